"""What the object stores' mount options (ufs/s3options.py, azureoptions.py, gcsoptions.py)
share: values typed by their defaults, and an endpoint that must name its scheme."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from ufs.errors import UfsError


def typed_values(
    cls: type,
    options: Mapping[str, str],
    store: str,
    secrets: frozenset[str],
    unknown: Callable[[str], str],
) -> dict[str, Any]:
    """``options`` (strings, as given after -o) typed as the dataclass ``cls``'s defaults are;
    secrets skipped (they travel apart), an unknown key or a bad value an error naming it."""
    known = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in options.items():
        if key in secrets:
            continue
        if key not in known:
            raise UfsError(unknown(key))
        current = getattr(cls, key)
        try:
            if isinstance(current, bool):
                values[key] = str(raw).lower() in ("1", "true", "yes")
            elif isinstance(current, int):
                values[key] = int(raw)
            elif isinstance(current, float):
                values[key] = float(raw)
            else:
                values[key] = str(raw)
        except ValueError:
            raise UfsError(f"{store} mount option {key}: {raw!r} is not a valid value") from None
    return values


def check_endpoint(store: str, endpoint: str | None) -> None:
    """An endpoint without a scheme: the SDKs' answer is an error deep in client creation, so
    the fix is said here."""
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise UfsError(
            f"{store} mount option endpoint: {endpoint!r} has no scheme;"
            f" write -o endpoint=http://{endpoint} (or https://)"
        )

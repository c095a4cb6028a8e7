"""An S3 mount's options: parsed from the mount's strings, each named in its error."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ufs.errors import UfsError

SECRET_OPTIONS = frozenset({"access_key", "secret_key", "session_token"})


@dataclass(frozen=True)
class S3Options:
    endpoint: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO; None: AWS
    region: str | None = None
    path_style: bool = False  # bucket in the path, not the host name (MinIO, Ceph RGW)
    profile: str | None = None
    max_attempts: int = 5  # per request, first try included
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    pool_size: int = 64  # connections; parallel reads need one each
    multipart_threshold: int = 64 << 20
    multipart_chunk: int = 16 << 20
    upload_concurrency: int = 4
    page_size: int = 1000  # keys per LIST request
    posix_metadata: bool = True  # a listing HEADs each entry for its mode, owner and mtime

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> S3Options:
        """From mount options (strings); unknown keys are an error naming the key."""
        known = {f for f in cls.__dataclass_fields__}
        values: dict[str, Any] = {}
        for key, raw in options.items():
            if key in SECRET_OPTIONS:
                continue
            if key not in known:
                raise UfsError(unknown_option(key))
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
                raise UfsError(f"S3 mount option {key}: {raw!r} is not a valid value") from None
        endpoint = values.get("endpoint")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            # botocore's answer is a ValueError deep in client creation: say the fix here.
            raise UfsError(
                f"S3 mount option endpoint: {endpoint!r} has no scheme;"
                f" write -o endpoint=http://{endpoint} (or https://)"
            )
        return cls(**values)


def option_names() -> list[str]:
    """Every S3 mount option, secrets included, as a user writes them after -o."""
    return sorted({f.name for f in fields(S3Options)} | SECRET_OPTIONS)


def unknown_option(key: str) -> str:
    """The message for a key that is no S3 option: the nearest one, and all of them."""
    names = option_names()
    near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if not near:  # endpoint_url, aws_region: the option is the key's first or last word
        near = [n for n in names if n in key.split("_")][:1]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown S3 mount option {key!r}{hint}; the S3 options are: {', '.join(names)}"

"""An Azure Blob mount's options: parsed from the mount's strings, each named in its error.

The secrets (``account_key``, ``sas_token``, ``connection_string``) are not options here: they
reach the connector as its credentials, from the home's 0600 ``credentials`` file or a secret
source (engine/credentials.py), never from the journal or an argv."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ufs.errors import UfsError
from ufs.storeoptions import check_endpoint, typed_values

SECRET_OPTIONS = frozenset({"account_key", "sas_token", "connection_string"})


@dataclass(frozen=True)
class AzureOptions:
    account: str | None = None  # the storage account's name
    # e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite; None: the account's public one
    endpoint: str | None = None
    max_attempts: int = 5  # per request, first try included
    retry_backoff_s: float = 1.0  # the first retry's wait; later ones add retry_base**n
    retry_base: float = 2.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    block_threshold: int = 64 << 20  # larger writes go as staged blocks
    block_size: int = 16 << 20
    upload_concurrency: int = 4
    page_size: int = 1000  # names per List Blobs request
    read_chunk: int = 4 << 20  # a streamed read's request size (the SDK's download chunks)

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> AzureOptions:
        """From mount options (strings); unknown keys are an error naming the key."""
        values = typed_values(cls, options, "Azure", SECRET_OPTIONS, unknown_option)
        check_endpoint("Azure", values.get("endpoint"))
        for key in ("max_attempts", "block_size", "block_threshold", "upload_concurrency",
                    "page_size", "read_chunk"):  # fmt: skip
            if key in values and values[key] < 1:
                raise UfsError(f"Azure mount option {key}: {values[key]} is not positive")
        return cls(**values)


def option_names() -> list[str]:
    """Every Azure mount option, secrets included, as a user writes them after -o."""
    return sorted({f.name for f in fields(AzureOptions)} | SECRET_OPTIONS)


def unknown_option(key: str) -> str:
    """The message for a key that is no Azure option: the nearest one, and all of them."""
    names = option_names()
    # account_name, storage_endpoint: the option is one of the key's words
    near = [n for n in names if n in key.split("_")][:1]
    if not near:
        near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown Azure mount option {key!r}{hint}; the Azure options are: {', '.join(names)}"

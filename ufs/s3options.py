"""An S3 mount's options: parsed from the mount's strings, each named in its error."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ufs.storeoptions import check_endpoint, typed_values

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
    # boto3's TransferConfig defaults, as the direct upload a mount is measured against: with
    # 16 MiB parts, 4 in flight, the same upload to moto ran at ~0.7x boto3's (docs/benchmarks.md).
    multipart_chunk: int = 8 << 20
    upload_concurrency: int = 10
    # A new file written through the mount is uploaded in multipart_chunk parts as they fill,
    # upload_concurrency at a time, so close waits for its tail only (ufs/s3parts.py).
    stream_parts: bool = True
    page_size: int = 1000  # keys per LIST request
    posix_metadata: bool = True  # a listing HEADs each entry for its mode, owner and mtime

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> S3Options:
        """From mount options (strings); unknown keys are an error naming the key."""
        values = typed_values(cls, options, "S3", SECRET_OPTIONS, unknown_option)
        check_endpoint("S3", values.get("endpoint"))
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

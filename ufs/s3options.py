"""An S3 mount's options: parsed from the mount's strings, each named in its error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
                raise UfsError(f"unknown S3 mount option {key!r}")
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
        return cls(**values)

"""What the fsspec client's test processes run (importable by name: spawned children too)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

_fs: Any = None  # the file system a forked pool's workers inherit from their parent


def inherit(fs: Any) -> None:
    global _fs
    _fs = fs


def digests(fs: Any, paths: list[str]) -> tuple[dict[str, str], int, int]:
    """sha256 of each file read whole through ``fs`` (None: the inherited one), this process's
    pid, and how many requests its connection made."""
    fs = fs if fs is not None else _fs
    out = {}
    for path in paths:
        with fs.open(path, "rb") as f:
            out[path] = hashlib.sha256(f.read()).hexdigest()
    return out, os.getpid(), fs.conn.requests

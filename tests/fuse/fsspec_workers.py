"""What the fsspec client's test processes run (importable by name: spawned children too)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

_fs: Any = None  # the file system a forked pool's workers inherit from their parent


def inherit(fs: Any) -> None:
    global _fs
    _fs = fs


def digests(fs: Any, paths: list[str]) -> tuple[dict[str, str], int, int, dict[str, int]]:
    """sha256 of each file read whole through ``fs`` (None: the inherited one), this process's
    pid, how many requests its connection made for those reads, and each file's size as
    ``info`` asks the daemon (requests made by several processes at once)."""
    fs = fs if fs is not None else _fs
    out = {}
    for path in paths:
        with fs.open(path, "rb") as f:
            out[path] = hashlib.sha256(f.read()).hexdigest()
    requests = fs.conn.requests
    sizes = {path: fs.info(path)["size"] for path in paths for _ in range(5)}
    return out, os.getpid(), requests, sizes


class FileDigests:
    """A map-style dataset (what torch's DataLoader takes): item i is the sha256 of file i,
    read through the fsspec client in whichever worker process loads it."""

    def __init__(self, fs: Any, paths: list[str]) -> None:
        self.fs, self.paths = fs, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> str:
        with self.fs.open(self.paths[i], "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

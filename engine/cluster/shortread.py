"""A cluster client's short-circuit reads: on the owner's host, the bytes of a range come
straight from the owner's tier files, located by its block service (engine/cluster/locate.py),
rather than through it over HTTP.

Every block read is checked against the length and CRC-32 the owner gave: a file evicted,
rewritten or unreadable since (or not readable by this process at all: the worker's tier files
are 0600, its user's) makes the whole range ``None``, and the caller reads it over HTTP: never
a wrong byte. A located block's bytes cannot change under its name unless the file was
rewritten, which the check catches: so locations of a version the client knows are kept
(``Locations``), and a warm epoch asks the worker nothing.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from typing import Any

import urllib3

from engine.cache.crc import crc32
from engine.cluster.locate import host_identity

LOCATE_PATH = "/v1/locate"
MAX_FILES = 100_000  # files whose locations a client keeps (a few hundred bytes each)
Key = tuple[str, str, str]  # worker, path, version


def located(reply: urllib3.BaseHTTPResponse) -> dict[str, Any] | None:
    """The owner's answer, if it lets this process short-circuit: same host, all cached."""
    if reply.status != 200:
        return None
    try:
        answer = json.loads(reply.data)
    except ValueError:
        return None
    mine = host_identity()
    if not mine or answer.get("host") != mine or not answer.get("cached"):
        return None
    return answer


def read_located(answer: dict[str, Any], offset: int, length: int) -> bytes | None:
    """``length`` bytes from ``offset`` out of the located blocks; None if one fails."""
    blocks = {int(b["index"]): b for b in answer["blocks"]}
    return _assemble(blocks, int(answer["block_size"]), int(answer["size"]), offset, length)


def _assemble(blocks: dict[int, dict[str, Any]], bs: int, size: int, offset: int, length: int
              ) -> bytes | None:  # fmt: skip
    end = min(size, offset + length)
    parts = []
    for idx in range(offset // bs, -(-end // bs)) if end > offset else ():
        block = blocks.get(idx)
        data = _block(block) if block is not None else None
        if data is None:
            return None
        start = idx * bs
        parts.append(data[max(0, offset - start) : max(0, end - start)])
    out = b"".join(parts)
    return out if len(out) == max(0, end - offset) else None


class Locations:
    """Blocks located before, per (worker, path, version the client expects): a warm reader
    asks no worker at all. Kept only with a version: a block located for that version holds
    that version's bytes for as long as its file passes the check; one that fails (evicted,
    rewritten) forgets the file's locations."""

    def __init__(self, limit: int = MAX_FILES) -> None:
        self._files: OrderedDict[Key, tuple[int, int, dict[int, dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit

    def read(self, key: Key, offset: int, length: int) -> bytes | None:
        with self._lock:
            known = self._files.get(key)
        if known is None:
            return None
        size, bs, blocks = known
        data = _assemble(blocks, bs, size, offset, length)
        if data is None:
            with self._lock:
                self._files.pop(key, None)
        return data

    def remember(self, key: Key, answer: dict[str, Any]) -> None:
        size, bs = int(answer["size"]), int(answer["block_size"])
        with self._lock:
            known = self._files.pop(key, None)
            blocks = known[2] if known is not None and known[:2] == (size, bs) else {}
            blocks.update({int(b["index"]): b for b in answer["blocks"]})
            self._files[key] = (size, bs, blocks)
            while len(self._files) > self.limit:
                self._files.popitem(last=False)


def _block(block: dict[str, Any]) -> bytes | None:
    want = int(block["length"])
    try:
        fd = os.open(str(block["path"]), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # evicted, or not ours to read
        return None
    try:
        data = os.pread(fd, want + 1, int(block["offset"]))
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != want or crc32(data) != int(block["checksum"]):
        return None
    return data

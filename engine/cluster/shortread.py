"""A cluster client's short-circuit reads: on the owner's host, the bytes of a range come
straight from the owner's tier files, located by its block service (engine/cluster/locate.py),
rather than through it over HTTP.

Every block read is checked against the length and CRC-32 the owner gave: a file evicted,
rewritten or unreadable since (or not readable by this process at all: the worker's tier files
are 0600, its user's) makes the whole range ``None``, and the caller reads it over HTTP: never
a wrong byte. A located block's bytes cannot change under its name unless the file was
rewritten, which the check catches.
"""

from __future__ import annotations

import json
import os
from typing import Any

import urllib3

from engine.cache.crc import crc32
from engine.cluster.locate import host_identity

LOCATE_PATH = "/v1/locate"


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
    bs, size = int(answer["block_size"]), int(answer["size"])
    end = min(size, offset + length)
    parts = []
    for block in answer["blocks"]:
        data = _block(block)
        if data is None:
            return None
        start = int(block["index"]) * bs
        parts.append(data[max(0, offset - start) : max(0, end - start)])
    out = b"".join(parts)
    return out if len(out) == max(0, end - offset) else None


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

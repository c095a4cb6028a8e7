"""Where a worker's cached blocks of a range lie on its disk (``GET /v1/locate``), for a client
on the same host, which then reads the tier files itself (short-circuit, as HDFS and Alluxio
do; the fsspec client does the same through a daemon's socket, engine/shortcircuit.py).

The answer names each block's tier file with its length and CRC-32 (the client checks both:
a block evicted or rewritten since is caught there and read over HTTP instead), and the
worker's host: the client short-circuits only when it is its own. A range with a block not
cached is answered "not cached": the client reads it over HTTP, which caches it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from engine.cluster.refresh import settle_version
from engine.filesystem import FileSystem
from engine.shortcircuit import block_file, content_of

# One host: its boot (a kernel's, shared by its containers) and, where there is one, its
# machine id. Containers of one host may see different files under one name: the client's
# check of each block (length, CRC-32) is what keeps a wrong byte out, this only saves a
# client on another host from trying.
IDENTITY_FILES = ("/proc/sys/kernel/random/boot_id", "/etc/machine-id")


@cache
def host_identity() -> str:
    """This host's identity, the same in every process on it; "" if it cannot be told."""
    parts = []
    for path in IDENTITY_FILES:
        try:
            with open(path) as f:
                parts.append(f.read().strip())
        except OSError:
            continue  # no machine id in many containers
    return "/".join(parts) if parts and parts[0] else ""


def locate(fs: FileSystem, path: str, offset: int, length: int, expected: str | None
           ) -> dict[str, Any]:  # fmt: skip
    """The answer to ``/v1/locate``: JSON-ready. ``cached`` False when a block of the range is
    not cached (or no cache is configured)."""
    settle_version(fs, path, expected)
    node = fs.sync.lookup(path)
    version, size = content_of(fs, node)
    answer: dict[str, Any] = {"host": host_identity(), "size": size, "cached": False}
    if fs.cache is None or node.children is not None:
        return answer
    bs = fs.block_size_for(node)
    end = min(size, offset + length)
    blocks = []
    for idx in range(offset // bs, (end + bs - 1) // bs if end > offset else offset // bs):
        found = block_file(fs, (node.id, version, idx))
        if found is None:
            return answer
        file, info = found
        blocks.append({"index": idx, "path": file, "offset": 0, "length": info.length,
                       "checksum": info.checksum})  # fmt: skip
    answer.update(cached=True, block_size=bs, blocks=blocks)
    return answer

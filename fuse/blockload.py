"""A worker's ``POST /v1/load?path=REL`` (docs/cluster.md): the whole file read through its
engine's read path, as `shoal fs load` does on one node, so that its blocks are in the owner's
cache when the answer comes: each block fetched from the store once (a cached block is a hit),
and any block the storer turned away (its queue full) stored before answering."""

from __future__ import annotations

from engine.engine import Engine
from engine.errors import InvalidArgument

LOAD_CHUNK = 4 << 20  # a read of the load: whole blocks at the default block size


def load_file(engine: Engine, path: str) -> int:
    """Bytes of ``path`` (below the worker's root) now in its cache."""
    node = engine.sync.lookup(path)
    if node.kind != "file":
        raise InvalidArgument(f"{path} is not a file")
    loaded = 0
    for offset in range(0, node.size, LOAD_CHUNK):
        loaded += len(engine.fs.read(path, offset, LOAD_CHUNK))
    if engine.cache is not None:
        engine.cache.drain()
        engine.fs.store_missing(node)
    return loaded

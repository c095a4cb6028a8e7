"""Cache hits where the reader cannot wait (the FUSE event loop): after a restart, a small
block's first read is checked there and served, rather than handed to a worker thread; a
damaged one is still never served."""

from __future__ import annotations

import os
from pathlib import Path

from engine.engine import Engine
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore

BLOCK = 1 << 20


def _cached(engine: Engine, path: str) -> bytes:
    node = engine.sync.lookup(path)
    data = engine.fs.read(path, 0, node.size)
    assert engine.cache is not None
    engine.cache.drain()
    return data


def test_first_hit_after_a_restart_is_checked_where_it_cannot_wait(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    small, large = os.urandom(110_000), os.urandom(BLOCK)  # beyond blockcache's INLINE_CHECK
    (store.root / "small").write_bytes(small)
    (store.root / "large").write_bytes(large)
    (store.root / "damaged").write_bytes(os.urandom(50_000))
    ssd = tmp_path / "ssd"
    write_config(home, block_size=BLOCK, tiers=[("SSD", ssd, 1 << 30)])
    engine = open_engine()
    try:
        engine.mounts.mount("/", store.uri)
        for name in ("small", "large", "damaged"):
            _cached(engine, f"/{name}")
    finally:
        engine.close()
    damaged_id = None
    engine = open_engine()  # nothing checked yet in this process
    try:
        damaged_id = engine.sync.lookup("/damaged").id
        node = engine.sync.lookup("/small")
        assert engine.fs.read_cached(node, 0, 200_000) == small
        assert engine.fs.read_cached(node, 1000, 10) == small[1000:1010]
        # A block too long to check on the event loop: left to a worker thread.
        node = engine.sync.lookup("/large")
        assert engine.fs.read_cached(node, 0, 100) is None
        assert engine.fs.read_node(node, 0, len(large)) == large
        assert engine.fs.read_cached(node, 0, 100) == large[:100]
    finally:
        engine.close()
    (blk,) = (ssd / str(damaged_id)).glob("*.blk")
    raw = bytearray(blk.read_bytes())
    raw[100] ^= 0xFF
    blk.write_bytes(bytes(raw))
    engine = open_engine()
    try:
        node = engine.sync.lookup("/damaged")
        assert engine.fs.read_cached(node, 0, 50_000) is None  # failed its check: not served
        assert engine.fs.read_node(node, 0, 50_000) == (store.root / "damaged").read_bytes()
    finally:
        engine.close()

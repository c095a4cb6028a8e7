"""Cache hits where the reader cannot wait (the FUSE event loop): after a restart, a small
block's first read is checked there and served, rather than handed to a worker thread; a
damaged one is still never served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.engine import Engine
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.pagecache import evict, resident
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


def test_checks_of_a_volatile_tier_are_carried_over_a_clean_restart(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A MEM tier's block files change only through the file system, which changes their
    stamps: a clean stop records the checked ones, and the next start trusts them while their
    stamps hold (a disk tier is checked anew). No record (a crash), a damaged one, or a block
    file changed since: checked again, never served unchecked."""
    store = LocalStore(tmp_path / "ufs")
    data = {name: os.urandom(BLOCK) for name in ("a", "b", "c")}  # too long to check inline
    for name, value in data.items():
        (store.root / name).write_bytes(value)
    mem = tmp_path / "mem"
    write_config(home, block_size=BLOCK, tiers=[("MEM", mem, 1 << 30)])
    record = home / "cache-checked"

    def restart_and_hits() -> dict[str, bytes | bytearray | None]:
        engine = open_engine()
        try:
            nodes = {name: engine.sync.lookup(f"/{name}") for name in data}
            return {name: engine.fs.read_cached(n, 0, BLOCK) for name, n in nodes.items()}
        finally:
            engine.close()

    engine = open_engine()
    try:
        engine.mounts.mount("/", store.uri)
        for name in data:
            assert _cached(engine, f"/{name}") == data[name]
    finally:
        engine.close()
    assert record.exists()
    assert restart_and_hits() == data  # served at once: checked in the last run
    assert restart_and_hits() == data  # and recorded again at that clean stop
    record.unlink()  # as a crash leaves it: none
    assert restart_and_hits() == dict.fromkeys(data)  # each left to a thread's check
    engine = open_engine()  # checked again, by the path that may wait
    try:
        for name in data:
            assert engine.fs.read(f"/{name}", 0, BLOCK) == data[name]
    finally:
        engine.close()
    raw = bytearray(record.read_bytes())
    raw[-1] ^= 0xFF
    record.write_bytes(bytes(raw))
    assert restart_and_hits() == dict.fromkeys(data)  # a damaged record is ignored
    engine = open_engine()
    try:
        for name in data:
            assert engine.fs.read(f"/{name}", 0, BLOCK) == data[name]
        blk = next((mem / str(engine.sync.lookup("/a").id)).glob("*.blk"))
    finally:
        engine.close()
    blk.write_bytes(os.urandom(BLOCK))  # the same length, another stamp: checked, refused
    hits = restart_and_hits()
    assert hits["a"] is None and hits["b"] == data["b"]
    engine = open_engine()
    try:
        assert engine.fs.read("/a", 0, BLOCK) == data["a"]  # dropped and fetched again
    finally:
        engine.close()


def test_a_disk_tier_is_checked_anew_after_every_start(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    value = os.urandom(BLOCK)
    (store.root / "f").write_bytes(value)
    write_config(home, block_size=BLOCK, tiers=[("SSD", tmp_path / "ssd", 1 << 30)])
    engine = open_engine()
    try:
        engine.mounts.mount("/", store.uri)
        assert _cached(engine, "/f") == value
    finally:
        engine.close()
    engine = open_engine()
    try:
        assert engine.fs.read_cached(engine.sync.lookup("/f"), 0, BLOCK) is None
    finally:
        engine.close()


def test_a_disk_tier_hit_not_in_the_page_cache_is_left_to_a_thread(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """The event loop never waits for a disk: a disk tier's block whose pages the kernel does
    not hold (after a reboot, or memory pressure) is not read there, checked or not; a worker
    thread's read (``read_node``) serves it, and the loop serves it from then on."""
    store = LocalStore(tmp_path / "ufs")
    small = os.urandom(110_000)
    (store.root / "small").write_bytes(small)
    ssd = tmp_path / "ssd"
    write_config(home, block_size=BLOCK, tiers=[("SSD", ssd, 1 << 30)])
    engine = open_engine()
    try:
        engine.mounts.mount("/", store.uri)
        _cached(engine, "/small")
        file_id = engine.sync.lookup("/small").id
    finally:
        engine.close()
    (blk,) = (ssd / str(file_id)).glob("*.blk")
    evict(blk)
    if resident(blk):
        pytest.skip("this file system kept the pages posix_fadvise was asked to drop")
    engine = open_engine()
    try:
        node = engine.sync.lookup("/small")
        evict(blk)  # (the start may have read it)
        # Its first read after a start (the whole block is checked): not from the disk here.
        assert engine.fs.read_cached(node, 0, 200_000) is None
        assert engine.fs.read_node(node, 0, 200_000) == small
        assert engine.fs.read_cached(node, 0, 200_000) == small
        # Checked already, its pages gone again: the ranged read is not made here either.
        evict(blk)
        assert engine.fs.read_cached(node, 1000, 10) is None
        assert engine.fs.read_node(node, 1000, 10) == small[1000:1010]
        assert engine.fs.read_cached(node, 1000, 10) == small[1000:1010]  # that page it holds
    finally:
        engine.close()

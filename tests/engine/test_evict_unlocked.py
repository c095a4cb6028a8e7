"""Eviction's file work runs outside the namespace lock (engine/cache/evicting.py): while a
demotion's copy waits on its source block file, every other request can take the lock, and a
block dropped meanwhile is not moved (no BlockMoved, no copy left, its room given back).

The source block file is made a FIFO in the real MEM tier: the copy's read then waits, in the
real TierStore, until the test writes the block's bytes into it."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from engine.cache.blockcache import BlockCache
from engine.cache.tiers import BlockKey
from engine.engine import Engine
from tests.engine.test_blockfds import cached, started
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore

# Only a bound so that a lock held forever (the defect) fails the test instead of hanging it.
DEADLOCK_GUARD_S = 30.0


def _fifo_in_place_of(cache: BlockCache, key: BlockKey) -> str:
    path = cache.by_name["MEM"].path_of(key)
    os.unlink(path)
    os.mkfifo(path, 0o600)
    return path


def _writer_once_read(path: str, evictor: threading.Thread) -> int:
    """The FIFO's write end, once the eviction has opened it to read (the copy has begun)."""
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        assert evictor.is_alive(), "the store finished without reading the evicted block"
        time.sleep(0.001)


def _evicting(engine: Engine) -> threading.Thread:
    """Reads /b in a thread: MEM holds one block, so storing b's demotes a's to SSD."""
    thread = threading.Thread(target=cached, args=(engine, "b"))
    thread.start()
    return thread


def _consistent(cache: BlockCache) -> None:
    for tier, lru in cache.lru.items():
        assert cache.used[tier] == sum(lru.values()), tier
    assert not cache.pending.jobs and not cache.pending.moving and not cache.pending.unlinking


class Demotion(NamedTuple):
    engine: Engine
    cache: BlockCache
    key: BlockKey
    data: bytes
    fifo: str


@contextmanager
def _demotion_copying(home: Path, tmp_path: Path, open_engine: OpenEngine) -> Iterator[Demotion]:
    """Block /a cached in a one-block MEM tier, its file a FIFO, and /b being stored in a
    thread: for the length of the block, a's demotion to SSD waits in its copy's read."""
    tiers = [("MEM", tmp_path / "mem", 16), ("SSD", tmp_path / "ssd", 64)]
    engine = started(home, tmp_path, open_engine, tiers)
    cache, key, data = cached(engine, "a")
    fifo = _fifo_in_place_of(cache, key)
    evictor = _evicting(engine)
    fd = _writer_once_read(fifo, evictor)
    try:
        yield Demotion(engine, cache, key, data, fifo)
    finally:
        os.write(fd, data)
        os.close(fd)
        evictor.join()


def test_the_namespace_lock_is_free_while_a_demotion_copies(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    with _demotion_copying(home, tmp_path, open_engine) as (engine, cache, key, data, fifo):
        took = engine.ns.lock.acquire(timeout=DEADLOCK_GUARD_S)
        assert took, "the namespace lock is held while the eviction copies"
        engine.ns.lock.release()
        info = cache.info(key)
        assert info is not None and info.tier == "MEM"  # not moved until its copy is whole
    info = cache.info(key)
    assert info is not None and info.tier == "SSD"
    assert cache.read(key) == data
    assert not os.path.lexists(fifo)  # the source, deleted once the move was durable
    _consistent(cache)


def test_a_block_dropped_while_its_demotion_copies_is_not_moved(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    with _demotion_copying(home, tmp_path, open_engine) as (engine, cache, key, data, fifo):
        assert engine.ns.lock.acquire(timeout=DEADLOCK_GUARD_S), "held during the copy"
        try:
            info = cache.info(key)
            assert info is not None
            cache.drop(key, info)  # freed meanwhile (`shoal cache free`, a failed check)
        finally:
            engine.ns.lock.release()
    assert cache.info(key) is None  # the drop stands: no BlockMoved after it
    assert not os.path.lexists(cache.by_name["SSD"].path_of(key))  # the copy was removed
    _consistent(cache)
    assert engine.fs.read("/a", 0, 16) == data  # fetched again from the store


def test_concurrent_stores_and_frees_never_overcommit_a_tier(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """Threads storing and freeing blocks at once, each making room in full tiers: the bytes
    counted never pass a quota, and at rest they, the eviction order, the block map and the
    files in each tier agree."""
    store = LocalStore(tmp_path / "ufs")
    for name in "abcd":
        store.put(name, name.encode() * 64)  # 4 blocks of 16 bytes each
    tiers = [("MEM", tmp_path / "mem", 32), ("SSD", tmp_path / "ssd", 48)]
    write_config(home, block_size=16, tiers=tiers)
    engine = open_engine()
    engine.mounts.mount("/", store.uri)
    cache = engine.cache
    assert cache is not None
    nodes = {name: engine.sync.lookup(f"/{name}") for name in "abcd"}
    over: list[dict[str, int]] = []

    def churn(name: str) -> None:
        node = nodes[name]
        for _ in range(30):
            for idx in range(4):
                cache.store((node.id, node.version, idx), name.encode() * 16)
                with engine.ns.lock:
                    if any(cache.used[t.name] > t.quota for t in cache.tiers):
                        over.append(dict(cache.used))
            cache.free(node.id)

    threads = [threading.Thread(target=churn, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cache.run_evictions()
    assert over == []
    _consistent(cache)
    for tier in cache.tiers:
        on_disk = {key for key, _path, _size in tier.scan()}
        in_map = {
            (f, v, i)
            for f, blocks in engine.state.blocks.items()
            for (v, i), info in blocks.items()
            if info.tier == tier.name
        }
        assert on_disk == in_map == set(cache.lru[tier.name]), tier.name
    for name, node in nodes.items():
        for idx in range(4):
            got = cache.read((node.id, node.version, idx))
            assert got is None or got == name.encode() * 16


def test_a_block_whose_file_is_deleted_while_it_is_demoted_leaves_no_file(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    with _demotion_copying(home, tmp_path, open_engine) as (engine, cache, key, data, fifo):
        assert engine.ns.lock.acquire(timeout=DEADLOCK_GUARD_S), "held during the copy"
        engine.ns.lock.release()
        engine.fs.delete("/a")  # its blocks leave the map: the one being copied is garbage
    assert cache.info(key) is None
    assert not os.path.lexists(fifo)  # detached, so no later collection would find it
    assert not os.path.lexists(cache.by_name["SSD"].path_of(key))
    _consistent(cache)

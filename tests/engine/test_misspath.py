"""The miss path from a local UFS: the reader is answered from its own read of the UFS, and the
block is stored behind its back (engine/cache/storer.py) by a bounded queue that drops work
rather than hold readers or memory; only bytes of the version's UFS file are stored."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.cache.storer import QUEUE_BLOCKS
from engine.engine import Engine
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore

KiB = 1 << 10
BLOCK = 64 * KiB


def _local_engine(
    open_engine: OpenEngine, home: Path, tmp_path: Path, files: dict[str, bytes], quota: int
) -> tuple[Engine, LocalStore]:
    store = LocalStore(tmp_path / "ufs")
    for key, data in files.items():
        store.put(key, data)
    write_config(home, block_size=BLOCK, tiers=[("SSD", tmp_path / "ssd", quota)])
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {})
    return engine, store


def _cached_blocks(engine: Engine, path: str) -> int:
    node = engine.sync.lookup(path)
    return sum(1 for (v, _i) in engine.ns.state.blocks.get(node.id, {}) if v == node.version)


def _cached_bytes(engine: Engine, path: str) -> int:
    node = engine.sync.lookup(path)
    blocks = engine.ns.state.blocks.get(node.id, {})
    return sum(info.length for (v, _i), info in blocks.items() if v == node.version)


def test_a_cold_local_read_answers_the_ufs_bytes_and_its_blocks_are_cached_after(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    files = {f"d/f{i}": os.urandom(i * 50 * KiB + 7) for i in range(1, 5)}
    engine, _store = _local_engine(open_engine, home, tmp_path, files, 64 << 20)
    cache = engine.cache
    assert cache is not None
    for key, data in files.items():
        node = engine.sync.lookup(f"/{key}")
        assert engine.fs.read_node(node, 0, node.size) == data
        # Mid-file ranges across block boundaries, from the blocks queued or stored by now.
        assert engine.fs.read_node(node, BLOCK - 5, 11) == data[BLOCK - 5 : BLOCK + 6]
    cache.drain()  # the storer's queue is empty once this returns
    misses = cache.stats.misses
    for key, data in files.items():
        node = engine.sync.lookup(f"/{key}")
        assert _cached_blocks(engine, f"/{key}") == (len(data) + BLOCK - 1) // BLOCK
        assert engine.fs.read_cached(node, 0, node.size) == data  # a hit: no UFS read
    assert cache.stats.misses == misses


def test_a_burst_of_misses_past_the_store_queue_is_answered_and_the_excess_dropped(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    # More blocks than the storer's queue holds (tiny files: the bound on blocks, not bytes).
    bound = QUEUE_BLOCKS
    files = {f"burst/d{i // 500}/f{i:05d}": b"%08d" % i for i in range(bound + 40)}
    engine, _store = _local_engine(open_engine, home, tmp_path, files, 64 << 20)
    cache = engine.cache
    assert cache is not None
    nodes = {key: engine.sync.lookup(f"/{key}") for key in files}
    got: dict[str, bytes] = {}

    def read_all() -> None:
        for key, node in nodes.items():
            got[key] = engine.fs.read_node(node, 0, node.size)
            # A block waiting in the queue (or being stored) serves its readers.
            got[key + "@3"] = engine.fs.read_node(node, 3, 100)

    # The storer cannot commit while the namespace lock is held elsewhere (as when the gate
    # is busy): readers must still be answered, and the queue must not grow past its bound.
    reader = threading.Thread(target=read_all)
    with engine.ns.lock:
        reader.start()
        reader.join(timeout=120)
        assert not reader.is_alive(), "readers waited for the storer"
    assert all(got[key] == data and got[key + "@3"] == data[3:] for key, data in files.items())
    cache.drain()
    cached = sum(_cached_blocks(engine, f"/{key}") for key in files)
    assert cached <= bound  # the rest was dropped, not held in memory
    assert cache.stats.stores_dropped >= len(files) - cached
    for key, node in list(nodes.items())[-50:]:  # dropped blocks are fetched again, right
        assert engine.fs.read_node(node, 0, node.size) == files[key]


def test_bytes_of_a_ufs_change_metadata_has_not_seen_are_not_cached_as_the_old_version(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    old = os.urandom(100 * KiB)
    engine, store = _local_engine(open_engine, home, tmp_path, {"x/data.bin": old}, 64 << 20)
    cache = engine.cache
    assert cache is not None
    node = engine.sync.lookup("/x/data.bin")
    version = node.version  # (the inode object itself moves to the next version)
    # Changed in place behind Shoal's back, same size, a new mtime: the fingerprint differs.
    new = os.urandom(len(old))
    target = store.root / "x" / "data.bin"
    st = os.stat(target)
    target.write_bytes(new)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    engine.fs.read_node(node, 0, node.size)  # the store has the new bytes: they are read
    cache.drain()
    # Not kept under the version whose fingerprint is the old file's.
    assert cache.info((node.id, version, 0)) is None
    assert cache.info((node.id, version, 1)) is None
    # Once metadata sees the change, the new bytes are the new version's, and are cached.
    engine.sync.sync("/x")
    fresh = engine.sync.lookup("/x/data.bin")
    assert fresh.version != version
    assert engine.fs.read_node(fresh, 0, fresh.size) == new
    cache.drain()
    assert _cached_blocks(engine, "/x/data.bin") == 2


def test_a_local_miss_with_no_room_in_any_tier_is_still_answered(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    files = {f"full/f{i}": os.urandom(3 * BLOCK + i) for i in range(3)}
    # Room for two blocks, and nothing evictable beyond what reads cache.
    engine, _store = _local_engine(open_engine, home, tmp_path, files, 2 * BLOCK)
    cache = engine.cache
    assert cache is not None
    for key, data in files.items():
        node = engine.sync.lookup(f"/{key}")
        assert engine.fs.read_node(node, 0, node.size) == data
    cache.drain()
    # The quota is in bytes: one full block and the 1- and 2-byte tails fit in it together.
    assert sum(_cached_bytes(engine, f"/{key}") for key in files) <= 2 * BLOCK
    for key, data in files.items():
        node = engine.sync.lookup(f"/{key}")
        assert engine.fs.read_node(node, 0, node.size) == data


def test_an_open_file_unlinked_keeps_all_its_content_though_the_store_queue_drops(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    data = os.urandom(3 * BLOCK + 5)
    engine, _store = _local_engine(open_engine, home, tmp_path, {"keep/f": data}, 64 << 20)
    cache = engine.cache
    assert cache is not None
    node = engine.sync.lookup("/keep/f")
    cache.fetcher.storer.max_blocks = 0  # every offer turned away, as when far behind
    engine.fs.opened(node.id)
    engine.fs.delete("/keep/f")  # its cache blocks are all it has left
    orphan = engine.fs.still_there(node.id)
    assert engine.fs.read_node(orphan, 0, len(data)) == data
    engine.fs.released(node.id)


def test_a_block_stored_between_a_misss_first_look_and_its_flight_is_not_fetched_again(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    # The storer wrote the block and left its queue right after the reader's first look missed
    # it (seen under load: a prefetch test counted one block read from the store twice).
    data = os.urandom(BLOCK)
    engine, _store = _local_engine(open_engine, home, tmp_path, {"race/f": data}, 64 << 20)
    cache = engine.cache
    assert cache is not None
    node = engine.sync.lookup("/race/f")
    key = (node.id, node.version, 0)
    looks: list[int] = []
    real_read = cache.read

    def read_as_the_storer_lands(
        k: tuple[int, int, int], offset: int = 0, length: int = -1
    ) -> bytes | None:
        looks.append(1)
        if len(looks) == 1:  # the first look misses; the storer lands the block right after
            assert real_read(k, offset, length) is None
            assert cache.store(k, data)
            return None
        return real_read(k, offset, length)

    fetched: list[int] = []

    def fetch() -> list[bytes]:
        fetched.append(1)
        return [data]

    cache.read = read_as_the_storer_lands  # type: ignore[method-assign,assignment]
    try:
        assert cache.fetcher.get(key, fetch) == data
    finally:
        del cache.read
    assert fetched == [], "the block was fetched again though it had just been stored"

"""The block cache's kept-open block files (engine/cache/openblocks.py) against the cache's own
changes: a block evicted, demoted, dropped or replaced while a descriptor of its file is kept
(or held by a reader) is then read as a miss or with its right bytes, never stale or another
block's bytes, and no descriptor of a removed block file outlives its last reader."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.cache.blockcache import BlockCache
from engine.cache.tiers import BlockKey
from engine.engine import Engine
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore


def open_paths() -> list[str]:
    """What this process's descriptors point at (a deleted file's name ends " (deleted)")."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # the descriptor listdir itself used, closed meanwhile
    return out


def cached(engine: Engine, name: str) -> tuple[BlockCache, BlockKey, bytes]:
    """Reads ``name`` whole (so its one block is cached); the cache, that block's key and its
    bytes."""
    node = engine.sync.lookup(f"/{name}")
    data = engine.fs.read(f"/{name}", 0, node.size)
    cache = engine.cache
    assert cache is not None
    cache.drain()
    return cache, (node.id, node.version, 0), data


def started(home: Path, tmp_path: Path, open_engine: OpenEngine, tiers: list) -> Engine:
    store = LocalStore(tmp_path / "ufs")
    for name in "abcd":
        store.put(name, name.encode() * 16)  # one block of 16 bytes each
    write_config(home, block_size=16, tiers=tiers)
    engine = open_engine()  # fsck-checked and closed after the test
    engine.mounts.mount("/", store.uri)
    return engine


def test_an_evicted_block_is_a_miss_through_its_kept_descriptor(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    engine = started(home, tmp_path, open_engine, [("SSD", tmp_path / "ssd", 32)])
    cache, key, _ = cached(engine, "a")
    path = cache.by_name["SSD"].path_of(key)
    assert cache.read(key) == b"a" * 16  # a hit: its block file's descriptor is kept now
    assert path in open_paths()
    cached(engine, "b")
    cached(engine, "c")  # the tier holds two: a, the least recently used, is dropped
    assert cache.info(key) is None and not os.path.exists(path)
    assert cache.read(key) is None  # a miss, not the kept descriptor's bytes
    assert not any(p.startswith(path) for p in open_paths())  # closed with its file
    assert engine.fs.read("/a", 0, 16) == b"a" * 16  # fetched again from the store


def test_a_demoted_block_is_read_from_its_new_tier(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    tiers = [("MEM", tmp_path / "mem", 16), ("SSD", tmp_path / "ssd", 64)]
    engine = started(home, tmp_path, open_engine, tiers)
    cache, key, _ = cached(engine, "a")
    mem = cache.by_name["MEM"].path_of(key)
    assert cache.read(key) == b"a" * 16 and mem in open_paths()
    cached(engine, "b")  # MEM holds one block: a goes down to SSD
    info = cache.info(key)
    assert info is not None and info.tier == "SSD"
    assert not any(p.startswith(mem) for p in open_paths())  # MEM's descriptor of it closed
    assert cache.read(key) == b"a" * 16
    assert cache.by_name["SSD"].path_of(key) in open_paths()


def test_a_block_dropped_under_a_reader_keeps_its_bytes_for_it_alone(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    engine = started(home, tmp_path, open_engine, [("SSD", tmp_path / "ssd", 64)])
    cache, key, _ = cached(engine, "a")
    tier = cache.by_name["SSD"]
    path = tier.path_of(key)
    held, _st = tier.files.take(key)  # a reader between its take and its pread
    info = cache.info(key)
    assert info is not None
    with engine.ns.lock:
        cache.drop(key, info)  # evicted meanwhile: the file is unlinked
    cached(engine, "b")  # a new block file opened meanwhile must not get a's descriptor number
    assert os.pread(held.fd, 16, 0) == b"a" * 16  # still the block it took, not b's
    assert f"{path} (deleted)" in open_paths()
    tier.files.give_back(held)  # its last reader: now it is closed
    assert not any(p.startswith(path) for p in open_paths())
    assert cache.read(key) is None
    assert engine.fs.read("/a", 0, 16) == b"a" * 16


def test_a_block_file_replaced_behind_a_kept_descriptor_never_serves_the_old_bytes(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    engine = started(home, tmp_path, open_engine, [("SSD", tmp_path / "ssd", 64)])
    cache, key, _ = cached(engine, "a")
    path = cache.by_name["SSD"].path_of(key)
    assert cache.read(key) == b"a" * 16  # kept open and checked
    # Another file renamed over it (what a tier write does), not through the cache: the kept
    # descriptor reads the old file, whose bytes are not this file's block any more.
    with open(path + ".new", "wb") as f:
        f.write(b"X" * 16)
    os.rename(path + ".new", path)
    assert cache.read(key) is None  # reopened by name, failed its check: dropped
    assert cache.info(key) is None
    assert engine.fs.read("/a", 0, 16) == b"a" * 16


def test_readers_racing_evictions_and_stores_get_a_miss_or_their_own_bytes(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    engine = started(home, tmp_path, open_engine, [("SSD", tmp_path / "ssd", 64)])
    blocks = [cached(engine, name) for name in "abcd"]
    cache = blocks[0][0]
    wrong: list[tuple[BlockKey, bytes]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for _, key, data in blocks:
                got = cache.read(key)
                if got is not None and bytes(got) != data:
                    wrong.append((key, bytes(got)))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for _ in range(150):  # each block dropped (file unlinked) and stored again
            for _, key, data in blocks:
                info = cache.info(key)
                if info is not None:
                    with engine.ns.lock:
                        cache.drop(key, info)
                cache.store(key, data)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert wrong == []
    for _, key, data in blocks:
        assert cache.read(key) == data


def test_a_hit_leaves_its_block_files_access_time_alone(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    # A block written since its last read (a stop's move down a tier, a cold pass's store)
    # would have its access time moved by its first hit under relatime: on ext4 a journaled
    # inode update per block of a tier pass, for a time nothing reads.
    engine = started(home, tmp_path, open_engine, [("SSD", tmp_path / "ssd", 64)])
    cache, key, data = cached(engine, "a")
    tier = cache.by_name["SSD"]
    tier.files.close()  # the next hit opens the block file by name, as the first after a start
    path = tier.path_of(key)
    st = os.stat(path)
    before = st.st_mtime_ns - 10**10  # older than its content: relatime would move it
    os.utime(path, ns=(before, st.st_mtime_ns))
    assert cache.read(key) == data
    assert os.stat(path).st_atime_ns == before

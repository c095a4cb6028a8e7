"""Misses from a local store answered without a thread (ufs/resident.py): only when the kernel
holds the file's names and bytes; otherwise nothing is read there, and the thread's path reads
the right bytes. Either way the block is stored as a miss's is, under its version only if the
bytes are that version's."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.engine import Engine
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.pagecache import evict, resident
from tests.ufs.stores import LocalStore
from ufs.local import LocalUnderFS
from ufs.resident import never_waits

KiB = 1 << 10
BLOCK = 64 * KiB


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "ufs")
    if not never_waits(str(store.root)):
        pytest.skip("the temporary directory's file system is not one read without waiting")
    return store


def _engine(open_engine: OpenEngine, home: Path, tmp_path: Path, store: LocalStore) -> Engine:
    # No readahead: a block it is reading in a thread is (rightly) not read on the loop too,
    # which would make what these tests read there depend on that thread's timing.
    write_config(
        home, "[cache]\nreadahead_blocks = 0", block_size=BLOCK,
        tiers=[("SSD", tmp_path / "ssd", 64 << 20)],
    )  # fmt: skip
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {})
    return engine


def _cached_blocks(engine: Engine, path: str) -> int:
    node = engine.sync.lookup(path)
    return sum(1 for (v, _i) in engine.ns.state.blocks.get(node.id, {}) if v == node.version)


def test_the_connector_reads_without_waiting_only_what_the_page_cache_holds(
    store: LocalStore,
) -> None:
    data = os.urandom(110 * KiB)
    store.put("d/f", data)
    ufs = LocalUnderFS(str(store.root))
    try:
        assert ufs.read_resident("d/f", 0, BLOCK) is None  # not prepared by a blocking read
        assert ufs.read_checked("d/f", 0, 4 << 20)[0] == data
        got = ufs.read_resident("d/f", 0, 4 << 20)
        assert got is not None and got[0] == data
        assert got[1] == ufs.read_checked("d/f", 0, 1)[1]  # the same file's fingerprint
        tail = ufs.read_resident("d/f", 100 * KiB, 4 << 20)
        assert tail is not None and tail[0] == data[100 * KiB :]
        # A NOWAIT read that misses starts readahead, and the disk may bring the pages back
        # before the next read: evict right before it, a few tries.
        refused = 0
        for _ in range(5):
            evict(store.root / "d" / "f")
            if resident(store.root / "d" / "f"):
                pytest.skip("this file system kept the pages posix_fadvise was asked to drop")
            evict(store.root / "d" / "f")
            refused += ufs.read_resident("d/f", 0, 4 << 20) is None  # would wait for the disk
        assert refused > 0, "read without waiting even when the pages were dropped each time"
        assert ufs.read_checked("d/f", 0, 4 << 20)[0] == data  # the blocking read does
    finally:
        ufs.close()


def test_a_resident_read_never_leaves_the_root_nor_opens_what_is_not_a_file(
    store: LocalStore, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside")
    store.put("inside", b"inside")
    os.symlink(secret, store.root / "escape")  # absolute, out of the root
    os.symlink("inside", store.root / "alias")  # relative, inside: allowed
    os.mkfifo(store.root / "fifo")  # a writer-less FIFO: opening it blocking would hang
    (store.root / "dir").mkdir()
    ufs = LocalUnderFS(str(store.root))
    try:
        ufs.read_checked("inside", 0, 100)
        for path in ("escape", "fifo", "dir", "missing", "../secret"):
            assert ufs.read_resident(path, 0, 100) is None, path
        # The kernel's caches are the whole machine's: anything may drop them between two lines
        # (a full run once saw None here, with memory to spare). So the blocking read right
        # before, a few tries.
        for _ in range(5):
            ufs.read("alias", 0, 100)
            alias = ufs.read_resident("alias", 0, 100)
            if alias is not None:
                break
            time.sleep(0.05)
        assert alias is not None and alias[0] == b"inside"
    finally:
        ufs.close()


def test_a_miss_the_kernel_holds_is_answered_at_once_and_stored_after(
    open_engine: OpenEngine, home: Path, tmp_path: Path, store: LocalStore
) -> None:
    files = {f"d/f{i}": os.urandom(i * 40 * KiB + 3) for i in range(1, 4)}
    for key, data in files.items():
        store.put(key, data)
    engine = _engine(open_engine, home, tmp_path, store)
    cache = engine.cache
    assert cache is not None
    first = engine.sync.lookup("/d/f1")
    # The store's connector is opened (and its non-waiting reads prepared) by a blocking read.
    assert engine.fs.read_node(first, 0, 10) == files["d/f1"][:10]
    for key, data in files.items():
        node = engine.sync.lookup(f"/{key}")
        for offset, length in ((0, BLOCK), (BLOCK - 5, 5), (BLOCK, BLOCK)):
            if offset >= len(data):
                continue
            got = engine.fs.read_resident(node, offset, length)
            assert got == data[offset : offset + length], (key, offset)
        if len(data) > BLOCK:  # across two blocks: not on the event loop
            assert engine.fs.read_resident(node, BLOCK - 5, 10) is None
    cache.drain()
    misses = cache.stats.misses
    for key, data in files.items():
        assert _cached_blocks(engine, f"/{key}") == (len(data) + BLOCK - 1) // BLOCK
        node = engine.sync.lookup(f"/{key}")
        assert engine.fs.read_cached(node, 0, len(data)) == data
    assert cache.stats.misses == misses


def test_a_miss_whose_pages_were_evicted_goes_to_the_threads_read_with_the_right_bytes(
    open_engine: OpenEngine, home: Path, tmp_path: Path, store: LocalStore
) -> None:
    data = os.urandom(150 * KiB)
    store.put("e/big", data)
    store.put("e/small", b"x")
    engine = _engine(open_engine, home, tmp_path, store)
    cache = engine.cache
    assert cache is not None
    engine.fs.read_node(engine.sync.lookup("/e/small"), 0, 1)  # the connector, prepared
    evict(store.root / "e" / "big")
    if resident(store.root / "e" / "big"):
        pytest.skip("this file system kept the pages posix_fadvise was asked to drop")
    node = engine.sync.lookup("/e/big")
    assert engine.fs.read_resident(node, 0, BLOCK) is None
    assert engine.fs.read_node(node, 0, len(data)) == data  # a thread's read: from the disk
    cache.drain()
    assert _cached_blocks(engine, "/e/big") == 3


def test_bytes_of_a_change_metadata_has_not_seen_are_answered_but_not_cached_as_the_old(
    open_engine: OpenEngine, home: Path, tmp_path: Path, store: LocalStore
) -> None:
    old = os.urandom(50 * KiB)
    store.put("x/data.bin", old)
    store.put("x/other", b"o")
    engine = _engine(open_engine, home, tmp_path, store)
    cache = engine.cache
    assert cache is not None
    engine.fs.read_node(engine.sync.lookup("/x/other"), 0, 1)
    node = engine.sync.lookup("/x/data.bin")
    version = node.version
    new = os.urandom(len(old))
    target = store.root / "x" / "data.bin"
    st = os.stat(target)
    target.write_bytes(new)  # behind Shoal's back, same size, a later mtime
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert engine.fs.read_resident(node, 0, len(old)) == new  # what the store holds
    cache.drain()
    assert cache.info((node.id, version, 0)) is None

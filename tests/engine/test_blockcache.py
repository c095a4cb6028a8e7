"""The block cache: a second read of a dataset from S3 sends no request to the store; damaged,
vanished or full tiers are detected and bypassed, never serving wrong bytes."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from engine.engine import Engine
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore, S3Store

KiB = 1 << 10
BehindProxy = Callable[..., AbstractContextManager[tuple[Engine, FaultProxy]]]


def read_all(engine: Engine, path: str) -> bytes:
    size = engine.sync.lookup(path).size
    data = engine.fs.read(path, 0, size)
    assert engine.cache is not None
    engine.cache.drain()  # what the read fetched is cached in the background: wait for it
    return data


@pytest.fixture
def behind_proxy(
    s3_server: S3Server, proxy: FaultProxy, home: Path, tmp_path: Path, open_engine: OpenEngine
) -> BehindProxy:
    """Opens an engine whose mount reaches the S3 server (holding ``objects``) through a fault
    proxy (its requests cleared: the test sees only its own)."""

    @contextmanager
    def open_(
        objects: dict[str, bytes], block_size: int, quota: int
    ) -> Iterator[tuple[Engine, FaultProxy]]:
        store = S3Store(s3_server)
        for key, data in objects.items():
            store.put(key, data)
        write_config(home, block_size=block_size, tiers=[("SSD", tmp_path / "ssd", quota)])
        engine = open_engine()
        try:
            engine.mounts.mount("/", store.uri, {**store.options, "endpoint": proxy.endpoint})
            engine.sync.listdir("/")
            proxy.clear()
            yield engine, proxy
        finally:
            engine.close()

    return open_


def test_a_second_pass_over_an_s3_dataset_sends_no_request(
    s3_server: S3Server, proxy: FaultProxy, home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    dataset = {f"train/c{c}/img{i:02d}.jpg": os.urandom(100 * KiB + i) for c in range(3)
               for i in range(15)}  # fmt: skip
    dataset["shards/big.tar"] = os.urandom(3 * 1024 * KiB + 17)
    for key, data in dataset.items():
        store.put(key, data)
    write_config(home, block_size=1 << 20, tiers=[("SSD", tmp_path / "ssd", 64 << 20)])
    engine = open_engine()
    try:
        engine.fs.makedirs("/s3")
        engine.mounts.mount("/s3", store.uri, {**store.options, "endpoint": proxy.endpoint})
        for key, data in dataset.items():
            assert read_all(engine, f"/s3/{key}") == data
        first = len(proxy.requests)
        proxy.clear()
        for key, data in dataset.items():  # the second epoch
            assert read_all(engine, f"/s3/{key}") == data
        assert proxy.requests == []  # not one GET (nor LIST, nor HEAD) reached the store
        assert first > len(dataset)
        assert engine.cache is not None and engine.cache.stats.hits >= len(dataset)
    finally:
        engine.close()


@pytest.fixture
def local_dataset(tmp_path: Path) -> Iterator[tuple[LocalStore, dict[str, bytes]]]:
    store = LocalStore(tmp_path / "ufs")
    data = {f"f{i}": os.urandom(50 * KiB + i) for i in range(4)}
    for key, value in data.items():
        store.put(key, value)
    yield store, data


def test_a_corrupted_or_vanished_block_is_fetched_again(
    home: Path,
    tmp_path: Path,
    open_engine: OpenEngine,
    local_dataset: tuple[LocalStore, dict[str, bytes]],
) -> None:
    store, data = local_dataset
    ssd = tmp_path / "ssd"
    write_config(home, block_size=16 * KiB, tiers=[("SSD", ssd, 1 << 20)])
    engine = open_engine()
    try:
        cache = engine.cache
        assert cache is not None
        engine.mounts.mount("/", store.uri)
        for key, value in data.items():
            assert read_all(engine, f"/{key}") == value
        # Flip one byte in every cached block file: every read still returns the UFS's bytes.
        for path in ssd.rglob("*.blk"):
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            path.write_bytes(bytes(raw))
        misses = cache.stats.misses
        for key, value in data.items():
            assert read_all(engine, f"/{key}") == value
        assert cache.stats.misses > misses  # each damaged block was dropped and fetched again
        # The tier directory deleted under the running engine: bypassed and rebuilt.
        subprocess.run(["rm", "-rf", str(ssd)], check=True)
        for key, value in data.items():
            assert read_all(engine, f"/{key}") == value
        assert list(ssd.rglob("*.blk"))  # cached again
    finally:
        engine.close()
    # After a restart the map and the directories agree (fsck has nothing to repair).
    engine = open_engine()
    try:
        assert engine.cache is not None
        report = engine.cache.reconcile(repair=False)
        assert (report.orphans_removed, report.blocks_dropped) == (0, 0)
    finally:
        engine.close()


def test_a_full_tier_is_bypassed(
    home: Path,
    tmp_path: Path,
    open_engine: OpenEngine,
    local_dataset: tuple[LocalStore, dict[str, bytes]],
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    store, data = local_dataset
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        (small / "filler").write_bytes(b"\0" * 60 * KiB)  # the "disk" is nearly full
        write_config(
            home,
            block_size=16 * KiB,
            tiers=[("SSD", small / "blocks", 1 << 20), ("HDD", tmp_path / "hdd", 1 << 20)],
        )  # the quota says there is room; the disk does not
        engine = open_engine()
        try:
            engine.mounts.mount("/", store.uri)
            for key, value in data.items():
                assert read_all(engine, f"/{key}") == value
            assert engine.cache is not None
            tiers = {info.tier for blocks in engine.state.blocks.values()
                     for info in blocks.values()}  # fmt: skip
            assert "HDD" in tiers  # what did not fit went to the next tier
            for key, value in data.items():
                assert read_all(engine, f"/{key}") == value
        finally:
            engine.close()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_eviction_demotes_then_drops_and_spares_pinned_files(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    for name in "abcd":
        store.put(name, name.encode() * 64)  # 4 blocks of 16 bytes each
    write_config(
        home, block_size=16, tiers=[("MEM", tmp_path / "mem", 32), ("SSD", tmp_path / "ssd", 64)]
    )
    engine = open_engine()  # fsck-checked and closed after the test
    cache = engine.cache
    assert cache is not None
    engine.mounts.mount("/", store.uri)
    engine.sync.lookup("/a")
    engine.ns.setattr("/a", pinned=True)
    assert read_all(engine, "/a") == b"a" * 64  # 64 bytes pinned: MEM 32 + SSD 32
    for name in "bcd":
        assert read_all(engine, f"/{name}") == name.encode() * 64
    a = engine.sync.lookup("/a")
    assert len(engine.state.blocks[a.id]) == 4  # every block of the pinned file stayed
    tiers = {info.tier for blocks in engine.state.blocks.values() for info in blocks.values()}
    assert tiers == {"MEM", "SSD"}
    assert cache.used == {"MEM": 32, "SSD": 64}
    assert cache.stats.evictions > 0
    engine.ns.setattr("/a", pinned=False)
    assert read_all(engine, "/b") == b"b" * 64  # now a's blocks may go
    assert len(engine.state.blocks.get(a.id, {})) < 4


def test_read_types_and_the_lrfu_evictor(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    for name in "abcd":
        store.put(name, name.encode() * 16)  # one 16-byte block each
    tiers = [("MEM", tmp_path / "mem", 32), ("SSD", tmp_path / "ssd", 16)]
    write_config(home, '[cache]\nevictor = "LRFU"', block_size=16, tiers=tiers)
    engine = open_engine()  # fsck-checked and closed after the test
    cache = engine.cache
    assert cache is not None and cache.evictor == "LRFU"
    engine.mounts.mount("/", store.uri)

    def tier_of(name: str) -> str | None:
        node = engine.sync.lookup(f"/{name}")
        infos = list(engine.state.blocks.get(node.id, {}).values())
        return infos[0].tier if infos else None

    assert engine.fs.read("/d", 0, 16, read_type="NO_CACHE") == b"d" * 16
    cache.drain()
    assert tier_of("d") is None  # NO_CACHE: served, not kept
    for _ in range(5):
        assert read_all(engine, "/a") == b"a" * 16  # a: often
    assert read_all(engine, "/b") == b"b" * 16  # b: once, but after a
    assert read_all(engine, "/c") == b"c" * 16  # MEM is full: one goes down to SSD
    # LRU would demote a (least recent); LRFU demotes b (least used over time).
    assert (tier_of("a"), tier_of("b"), tier_of("c")) == ("MEM", "SSD", "MEM")
    # CACHE_PROMOTE brings b back up (and pushes the lowest-scored MEM block down).
    assert engine.fs.read("/b", 0, 16, read_type="CACHE_PROMOTE") == b"b" * 16
    assert tier_of("b") == "MEM"


def test_a_hit_served_without_a_read_plan_still_promotes_when_the_path_asks(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    # The FUSE layer serves hits with read_cached (no read plan on the event loop); a path set
    # to CACHE_PROMOTE must still bring its lower-tier blocks up.
    store = LocalStore(tmp_path / "ufs")
    for name in "abc":
        store.put(name, name.encode() * 16)
    write_config(
        home, block_size=16, tiers=[("MEM", tmp_path / "mem", 16), ("SSD", tmp_path / "ssd", 32)]
    )
    engine = open_engine()  # fsck-checked and closed after the test
    engine.mounts.mount("/", store.uri)

    def tier_of(name: str) -> str:
        node = engine.sync.lookup(f"/{name}")
        return next(iter(engine.state.blocks[node.id].values())).tier

    for name in "abc":
        read_all(engine, f"/{name}")
    assert (tier_of("a"), tier_of("c")) == ("SSD", "MEM")
    node = engine.sync.lookup("/a")
    assert engine.fs.read_cached(node, 0, 16) == b"a" * 16  # CACHE: stays below
    assert engine.cache is not None
    engine.cache.drain()
    assert tier_of("a") == "SSD"
    engine.fs.set_types("/a", read_type="CACHE_PROMOTE")
    assert engine.fs.read_cached(node, 0, 16) == b"a" * 16
    engine.cache.drain()
    assert (tier_of("a"), tier_of("c")) == ("MEM", "SSD")


def test_a_hit_from_a_lower_tier_promotes_as_the_nearest_type_set_above_it_says(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    # A hit's read type: the nearest type set on the file or a directory above it (the one
    # walk up the tree that also finds its mount), whatever is set further up.
    store = LocalStore(tmp_path / "ufs")
    for name in ("d/e/a", "d/e/b", "d/f/c", "x", "y"):
        store.put(name, name[-1].encode() * 16)
    write_config(
        home, block_size=16, tiers=[("MEM", tmp_path / "mem", 32), ("SSD", tmp_path / "ssd", 96)]
    )
    engine = open_engine()  # fsck-checked and closed after the test
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri)

    def tier_of(path: str) -> str:
        node = engine.sync.lookup(path)
        return next(iter(engine.state.blocks[node.id].values())).tier

    paths = ["/m/d/e/a", "/m/d/e/b", "/m/d/f/c", "/m/x", "/m/y"]
    for path in paths:
        read_all(engine, path)
    assert [tier_of(p) for p in paths[:3]] == ["SSD"] * 3  # pushed down by x and y
    assert engine.cache is not None
    c = engine.sync.lookup("/m/d/f/c")
    assert engine.fs.read_cached(c, 0, 16) == b"c" * 16  # its directory's type (CACHE) known
    engine.cache.drain()
    assert tier_of("/m/d/f/c") == "SSD"
    engine.fs.set_types("/m/d", read_type="CACHE_PROMOTE")  # then changed above it
    engine.fs.set_types("/m/d/e", read_type="CACHE")  # nearer: a and b stay below
    for path in paths[:3]:
        node = engine.sync.lookup(path)
        assert engine.fs.read_cached(node, 0, 16) == path[-1].encode() * 16
        engine.cache.drain()
    assert [tier_of(p) for p in paths[:3]] == ["SSD", "SSD", "MEM"]
    engine.fs.set_types("/", read_type="CACHE_PROMOTE")  # above the mount: a type still
    engine.fs.set_types("/m/d", read_type="")
    engine.fs.set_types("/m/d/e", read_type="")
    node = engine.sync.lookup("/m/d/e/a")
    assert engine.fs.read_cached(node, 0, 16) == b"a" * 16
    engine.cache.drain()
    assert tier_of("/m/d/e/a") == "MEM"


def test_concurrent_misses_fetch_once_and_sequential_readers_read_ahead(
    behind_proxy: BehindProxy,
) -> None:
    objects = {"one": b"1" * 64 * KiB, "stream": os.urandom(8 * 16 * KiB)}
    with behind_proxy(objects, 16 * KiB, 1 << 20) as (engine, proxy):
        proxy.add(Fault("delay", -1, seconds=0.3, method="GET"))  # misses overlap for sure
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda _: engine.fs.read("/one", 0, 100), range(8)))
        assert got == [b"1" * 100] * 8
        assert len([r for r in proxy.requests if r[0] == "GET"]) == 1  # one GET for 8 readers
        proxy.clear()
        stream = engine.sync.lookup("/stream")
        engine.fs.read("/stream", 0, 16 * KiB)
        engine.fs.read("/stream", 16 * KiB, 16 * KiB)  # sequential: blocks 2 and 3 come ahead
        assert engine.cache is not None
        engine.cache.drain()
        cached = {idx for (_v, idx) in engine.state.blocks[stream.id]}
        assert cached == {0, 1, 2, 3}


def test_parallel_readers_of_one_file_share_the_readahead_requests(
    behind_proxy: BehindProxy,
) -> None:
    # A training loader often splits one shard among threads, each taking the next chunk: the
    # stream is sequential across readers, and each of them should find its block already on
    # its way instead of sending a request of its own.
    bs = 128 * KiB
    content = os.urandom(8 * bs)
    with behind_proxy({"shard": content}, bs, 4 << 20) as (
        engine,
        proxy,
    ):
        proxy.add(Fault("delay", -1, seconds=0.5, method="GET"))

        def read_block(i: int) -> bytes:
            time.sleep(0.05 * i)  # in order, each while the earlier ones are still in flight
            return engine.fs.read("/shard", i * bs, bs)

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(read_block, range(8)))
        assert b"".join(got) == content
        gets = [r for r in proxy.requests if r[0] == "GET"]
        assert len(gets) <= 4, gets  # a request per block would be 8


def test_a_reader_has_its_bytes_before_the_rest_of_a_cold_block_arrives(
    behind_proxy: BehindProxy,
) -> None:
    bs = 1 << 20
    content = os.urandom(2 * bs)
    with behind_proxy({"big": content}, bs, 8 << 20) as (
        engine,
        proxy,
    ):
        engine.fs.readahead_blocks = 0  # only the reads' own block is fetched
        stall = Fault("stall", 1, method="GET", keep=300 * KiB)
        proxy.add(stall)
        with ThreadPoolExecutor(2) as pool:
            head = pool.submit(engine.fs.read, "/big", 0, 4 * KiB)
            # The block's first bytes have come, the rest is held back by the proxy: the
            # reader of the start is served now (this would time out if it waited for all).
            assert head.result(timeout=30) == content[: 4 * KiB]
            tail = pool.submit(engine.fs.read, "/big", 900 * KiB, 4 * KiB)
            time.sleep(0.2)
            assert not tail.done()  # its bytes are among those held back
            stall.release.set()
            assert tail.result(timeout=30) == content[900 * KiB : 904 * KiB]
        assert engine.cache is not None
        engine.cache.drain()
        node = engine.sync.lookup("/big")
        assert {idx for (_v, idx) in engine.state.blocks[node.id]} == {0}
        assert len([r for r in proxy.requests if r[0] == "GET"]) == 1  # one GET for both
        proxy.clear()
        assert engine.fs.read("/big", 0, bs) == content[:bs]  # the whole block, from the cache
        assert not [r for r in proxy.requests if r[0] == "GET"]

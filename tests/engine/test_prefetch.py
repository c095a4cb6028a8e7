"""Directory prefetch (engine/prefetch.py): a reader's first miss in a directory of a read-only
dataset fetches the directory's other files in the background, each block once, only into free
room below the watermark (never evicting), and only where the configuration and the mount ask."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import S3Server
from engine.engine import Engine
from engine.errors import InvalidArgument
from engine.inode import PINNED
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore, S3Store

KiB = 1 << 10


def settle(engine: Engine) -> None:
    """Prefetches queued so far have ended and what they fetched is stored."""
    assert engine.prefetch is not None and engine.cache is not None
    engine.prefetch.drain()
    engine.cache.drain()


def cached_files(engine: Engine, folder: str) -> set[str]:
    """Names in ``folder`` whose every block is cached."""
    out = set()
    for name, node in engine.sync.entries(folder):
        assert engine.cache is not None
        if node.children is None and engine.cache.cached_bytes(node.id, node.version) == node.size:
            out.add(name)
    return out


def test_a_first_read_prefetches_the_rest_of_its_directory_each_block_once(
    s3_server: S3Server, proxy: FaultProxy, home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    data = {f"train/c{c}/img{i:02d}.jpg": os.urandom(20 * KiB + i) for c in range(2)
            for i in range(12)}  # fmt: skip
    data["train/c0/big.bin"] = os.urandom(5 * 16 * KiB + 3)  # several blocks: runs of them
    for key, value in data.items():
        store.put(key, value)
    write_config(home, block_size=16 * KiB, tiers=[("SSD", tmp_path / "ssd", 8 << 20)])
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {**store.options, "endpoint": proxy.endpoint}, True)
    engine.sync.lookup("/train/c0/img00.jpg")  # listed before the count starts
    proxy.clear()
    assert engine.fs.read("/train/c0/img00.jpg", 0, 1 << 20) == data["train/c0/img00.jpg"]
    # Readers go on through the directory while the prefetch runs: each block is asked for
    # once, by whichever of them comes first.
    c0 = sorted(k for k in data if k.startswith("train/c0/"))
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda k: engine.fs.read("/" + k, 0, 1 << 20), c0))
    assert got == [data[k] for k in c0]
    settle(engine)
    assert cached_files(engine, "/train/c0") == {k.rsplit("/", 1)[1] for k in c0}
    assert cached_files(engine, "/train/c1") == set()  # another directory: not read, not fetched
    gets = Counter(path.split("?")[0] for method, path in proxy.requests if method == "GET")
    assert not any("/c1/" in p for p in gets)
    stats = engine.cache.stats  # type: ignore[union-attr]
    assert stats.ufs_bytes_read == sum(len(data[k]) for k in c0)  # no byte fetched twice
    assert stats.prefetched_blocks > 0
    proxy.clear()
    for key in c0:  # the epoch's second pass: all local
        assert engine.fs.read("/" + key, 0, 1 << 20) == data[key]
    assert proxy.requests == []


def test_prefetch_fills_only_free_room_below_the_watermark(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    for name in ("pinned", "kept"):
        store.put(f"old/{name}", name.encode() * (16 * KiB // len(name) + 1))
    for i in range(40):
        store.put(f"new/f{i:02d}", os.urandom(16 * KiB))
    # Two tiers of 10 blocks each; prefetch may fill them to 60%.
    write_config(
        home,
        block_size=16 * KiB,
        tiers=[("MEM", tmp_path / "mem", 160 * KiB), ("SSD", tmp_path / "ssd", 160 * KiB)],
    )
    engine = open_engine(overrides={"cache.prefetch_watermark": 0.6})
    cache = engine.cache
    assert cache is not None and engine.prefetch is not None
    engine.mounts.mount("/", store.uri, {"prefetch": "true"})  # writable, prefetch asked for
    engine.sync.lookup("/old/pinned")
    engine.ns.setattr("/old/pinned", pinned=True)
    for name in ("pinned", "kept"):
        engine.fs.read(f"/old/{name}", 0, 1 << 20)
    settle(engine)
    before = {(f, key) for f, blocks in engine.state.blocks.items() for key in blocks}
    assert len(before) == 4  # 2 files of 2 blocks (one read, one prefetched, or both read)
    prefetched = cache.stats.prefetched_blocks
    engine.fs.read("/new/f00", 0, 1 << 20)
    settle(engine)
    after = {(f, key) for f, blocks in engine.state.blocks.items() for key in blocks}
    assert before <= after  # nothing cached before was evicted, pinned or not
    assert cache.stats.evictions == 0
    for tier in cache.tiers:  # the reader's own block may take room; prefetch stopped below
        assert cache.used[tier.name] <= 0.6 * tier.quota + 16 * KiB
    assert 4 < len(after) < 4 + 40  # some of the directory, not all of it
    assert cache.stats.prefetch_skipped_space > 0
    # All but the reader's own block came by prefetch (the reader may have joined its flight).
    assert cache.stats.prefetched_blocks - prefetched >= len(after) - len(before) - 1
    pinned = engine.sync.lookup("/old/pinned")
    assert pinned.flags & PINNED and cache.cached_bytes(pinned.id, pinned.version) == pinned.size


def test_prefetch_is_off_by_config_by_mount_option_and_on_writable_mounts(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    stores = {d: LocalStore(tmp_path / d) for d in ("ro", "off", "rw", "local")}
    for i in range(5):
        for store in stores.values():
            store.put(f"d/f{i}", os.urandom(KiB))
        stores["ro"].put(f"e/f{i}", os.urandom(KiB))
    write_config(home, block_size=16 * KiB, tiers=[("SSD", tmp_path / "ssd", 1 << 20)])
    engine = open_engine()
    # A local path's store prefetches only when asked ("local"); "ro" stands for a read-only
    # mount of a network store, which prefetches by default (the S3 test above).
    for d, options, readonly in (("ro", {"prefetch": "true"}, True),
                                 ("off", {"prefetch": "false"}, True),
                                 ("rw", {}, False), ("local", {}, True)):  # fmt: skip
        engine.fs.makedirs(f"/{d}")
        engine.mounts.mount(f"/{d}", stores[d].uri, options, readonly)
        engine.fs.read(f"/{d}/d/f0", 0, KiB)
    settle(engine)
    assert len(cached_files(engine, "/ro/d")) == 5  # a read-only mount: a dataset
    assert cached_files(engine, "/off/d") == {"f0"}  # prefetch=false
    assert cached_files(engine, "/rw/d") == {"f0"}  # writable: only when asked
    assert cached_files(engine, "/local/d") == {"f0"}  # a local store: only when asked
    with pytest.raises(InvalidArgument, match="prefetch='maybe'"):
        engine.fs.makedirs("/bad")
        engine.mounts.mount("/bad", str(tmp_path / "bad"), {"prefetch": "maybe"}, True)
    engine.close()

    off = open_engine(overrides={"cache.prefetch_threads": 0})
    assert off.prefetch is None
    off.fs.read("/ro/e/f0", 0, KiB)  # the read-only mount's other directory
    assert off.cache is not None
    off.cache.drain()
    assert cached_files(off, "/ro/e") == {"f0"}
    for key, value in (("cache.prefetch_threads", "-1"), ("cache.prefetch_watermark", "1.5")):
        with pytest.raises(InvalidArgument, match=key):
            open_engine(tmp_path / "other", overrides={key: value})


def test_a_directory_whose_ttl_passed_is_not_prefetched(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    for d in ("expired", "live"):
        for i in range(4):
            store.put(f"{d}/f{i}", os.urandom(KiB))
    write_config(home, block_size=16 * KiB, tiers=[("SSD", tmp_path / "ssd", 1 << 20)])
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {"prefetch": "true"})
    engine.sync.lookup("/expired/f0")
    # Passed at once: the TTL checker will free what is cached there (it is not run here).
    engine.ns.setattr("/expired", ttl_ms=0, ttl_action="free")
    for d in ("expired", "live"):
        engine.fs.read(f"/{d}/f0", 0, KiB)
    settle(engine)
    assert cached_files(engine, "/expired") == {"f0"}  # the reader's own file only
    assert cached_files(engine, "/live") == {"f0", "f1", "f2", "f3"}


def test_the_next_directory_is_listed_before_its_readers_arrive(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    for c in range(4):
        store.put(f"train/c{c}/f0", os.urandom(KiB))
    write_config(home, block_size=16 * KiB, tiers=[("SSD", tmp_path / "ssd", 1 << 20)])
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {"prefetch": "true"}, True)  # a local store: asked
    engine.fs.read("/train/c1/f0", 0, KiB)
    settle(engine)
    train = engine.sync.lookup("/train")
    assert train.children is not None
    for name, node in train.children.items():  # c2 listed too, not read, not fetched
        assert engine.sync.needs_load(node) == (name not in ("c1", "c2")), name
    assert cached_files(engine, "/train/c2") == set()


def test_the_next_directory_is_listed_ahead_where_files_are_not_prefetched(
    s3_server: S3Server, home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """Listing ahead is metadata, one request a directory: a read-only network mount does it
    with `prefetch=false` too (every reader arriving in a directory waited for its listing),
    and `list_ahead=false` turns it off."""
    s3, s3_off = S3Store(s3_server), S3Store(s3_server)
    local, asked = LocalStore(tmp_path / "local"), LocalStore(tmp_path / "asked")
    for store in (s3, s3_off, local, asked):
        for c in range(3):
            store.put(f"train/c{c}/f0", os.urandom(KiB))
    write_config(home, block_size=16 * KiB, tiers=[("SSD", tmp_path / "ssd", 1 << 20)])
    engine = open_engine()
    mounts: list[tuple[str, str, dict[str, str]]] = [
              ("s3", s3.uri, {**s3.options, "prefetch": "false"}),
              ("off", s3_off.uri, {**s3.options, "prefetch": "false", "list_ahead": "false"}),
              ("local", local.uri, {}),
              ("asked", asked.uri, {"list_ahead": "true"})]  # fmt: skip
    for d, uri, options in mounts:
        engine.fs.makedirs(f"/{d}")
        engine.mounts.mount(f"/{d}", uri, options, True)
        engine.fs.read(f"/{d}/train/c0/f0", 0, KiB)
    settle(engine)
    for d, listed in (("s3", True), ("off", False), ("local", False), ("asked", True)):
        train = engine.sync.lookup(f"/{d}/train")
        assert train.children is not None
        assert engine.sync.needs_load(train.children["c1"]) is not listed, d
        assert engine.sync.needs_load(train.children["c2"]), d  # only the next one
        assert cached_files(engine, f"/{d}/train/c1") == set(), d  # listed, not fetched
    with pytest.raises(InvalidArgument, match="list_ahead='soon'"):
        engine.fs.makedirs("/bad")
        engine.mounts.mount("/bad", str(tmp_path / "bad"), {"list_ahead": "soon"}, True)


def test_prefetch_resumes_when_room_frees_and_still_never_evicts(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    other, dataset = LocalStore(tmp_path / "other"), LocalStore(tmp_path / "dataset")
    for i in range(12):
        other.put(f"o{i:02d}", os.urandom(16 * KiB))
    for i in range(8):
        dataset.put(f"f{i}", os.urandom(16 * KiB))
    # 20 blocks of room; prefetch may fill it to 10 (50%).
    write_config(home, block_size=16 * KiB, tiers=[("SSD", tmp_path / "ssd", 320 * KiB)])
    engine = open_engine(overrides={"cache.prefetch_watermark": 0.5})
    cache, fs = engine.cache, engine.fs
    assert cache is not None and engine.prefetch is not None
    fs.makedirs("/other")
    fs.makedirs("/data")
    engine.mounts.mount("/other", other.uri, {"prefetch": "false"})
    engine.mounts.mount("/data", dataset.uri, {"prefetch": "true"}, True)  # a local store: asked
    for i in range(12):  # other data, cached by its readers: 12 blocks, over the watermark
        fs.read(f"/other/o{i:02d}", 0, 1 << 20)
    settle(engine)
    fs.read("/data/f0", 0, 1 << 20)
    settle(engine)
    assert cached_files(engine, "/data") == {"f0"}  # all else skipped: no room below 50%
    assert cache.stats.prefetch_skipped_space >= 7  # (f0 too, if planned before it was stored)
    # Room frees as other data is freed (shoal cache free): 13 - 6 = 7 blocks, so 3 fit.
    for i in range(6):
        node = engine.sync.lookup(f"/other/o{i:02d}")
        assert cache.free(node.id) == 1
    settle(engine)
    assert len(cached_files(engine, "/data")) == 4
    # ... and as the other mount goes: its blocks are collected, and the rest of /data fits.
    engine.mounts.unmount("/other")
    settle(engine)
    assert cached_files(engine, "/data") == {f"f{i}" for i in range(8)}
    assert cache.stats.evictions == 0
    for tier in cache.tiers:
        assert cache.used[tier.name] <= 0.5 * tier.quota


def test_a_read_that_caches_nothing_does_not_spend_its_directorys_prefetch(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A NO_CACHE read lists the next directory ahead but prefetches nothing; it marked its
    directory done all the same, and a later read there that caches never prefetched it."""
    store = LocalStore(tmp_path / "ufs")
    for i in range(4):
        store.put(f"train/c0/f{i}", os.urandom(KiB))
    write_config(home, block_size=16 * KiB, tiers=[("SSD", tmp_path / "ssd", 1 << 20)])
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {"prefetch": "true"}, True)
    engine.fs.read("/train/c0/f0", 0, KiB, read_type="NO_CACHE")
    settle(engine)
    assert cached_files(engine, "/train/c0") == set()
    engine.fs.read("/train/c0/f1", 0, KiB)
    settle(engine)
    assert cached_files(engine, "/train/c0") == {"f0", "f1", "f2", "f3"}

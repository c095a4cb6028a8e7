"""Metadata that was loaded survives a restart and is served while its store is down (stale
while unavailable), on S3 (moto's server over HTTP) behind a fault proxy that drops every
request: listings, reads of cached blocks and files created with a write type that does not
need the UFS at close all work; a directory never loaded answers Unavailable; a failed look is
retried after a back-off, not on every call."""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from engine.engine import Engine
from engine.errors import Unavailable
from journal import entries as E
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import S3Store

A = os.urandom(150_000)  # three 64 KiB blocks
B = os.urandom(10_000)


def behind(proxy: FaultProxy, s3_server: S3Server, **options: str) -> S3Store:
    """A bucket prefix whose mount reaches the store through ``proxy`` (the test's own puts go
    straight to the server). Two attempts per request: an outage is found in a second."""
    store = S3Store(s3_server)
    store.options.update(endpoint=proxy.endpoint, max_attempts="2", connect_timeout_s="1")
    store.options.update(options)
    return store


def names(engine: Engine, path: str) -> set[str]:
    return {node.name for node in engine.sync.listdir(path)}


def down(proxy: FaultProxy) -> None:
    """Every request to the store is dropped without an answer from now on."""
    proxy.clear()
    proxy.add(Fault("drop", -1))


def load(engine: Engine, store: S3Store) -> None:
    """Mounts ``store`` at /data, lists /data and /data/train, and caches train's files."""
    engine.ns.mkdir("/data")
    engine.mounts.mount("/data", store.uri, store.options)
    assert names(engine, "/data") == {"train", "val"}
    assert names(engine, "/data/train") == {"a.bin", "b.bin"}
    assert engine.fs.read("/data/train/a.bin", 0, len(A)) == A
    assert engine.fs.read("/data/train/b.bin", 0, len(B)) == B
    assert engine.cache is not None
    engine.cache.drain()  # the blocks read are cached (and journaled) in the background


def fill(store: S3Store) -> None:
    store.put("train/a.bin", A)
    store.put("train/b.bin", B)
    store.put("val/c.bin", b"c" * 100)


@pytest.mark.parametrize(
    "interval, checkpoint",
    [(None, True), ("0", False)],
    ids=["default interval, from a checkpoint", "interval 0, replayed from the log"],
)
def test_loaded_metadata_is_served_after_a_restart_while_the_store_is_down(
    proxy: FaultProxy, s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine,
    interval: str | None, checkpoint: bool,
) -> None:  # fmt: skip
    store = behind(proxy, s3_server, **({"sync_interval": interval} if interval else {}))
    fill(store)
    home = ssd_home()
    engine = open_engine(home)
    load(engine, store)
    engine.close(checkpoint=checkpoint)

    down(proxy)
    engine = open_engine(home)
    engine.sync.retry_after_s = 3600  # a failed look is not repeated during the test
    assert names(engine, "/data") == {"train", "val"}
    assert names(engine, "/data/train") == {"a.bin", "b.bin"}
    assert engine.fs.read("/data/train/a.bin", 0, len(A)) == A  # cached blocks, no UFS
    assert engine.fs.read("/data/train/b.bin", 1000, 50) == B[1000:1050]
    # Files are created with the write types that do not need the UFS at close...
    engine.fs.write_file("/data/train/new.bin", io.BytesIO(b"n" * 70_000), write_type="MUST_CACHE")
    engine.fs.write_file("/data/train/up.bin", io.BytesIO(b"u" * 500), write_type="ASYNC_THROUGH")
    assert engine.fs.read("/data/train/new.bin", 0, 100_000) == b"n" * 70_000
    assert engine.fs.read("/data/train/up.bin", 0, 1000) == b"u" * 500
    # ...not with one that does: it fails, changing nothing.
    with pytest.raises(Unavailable):
        engine.fs.write_file("/data/train/t.bin", io.BytesIO(b"t"), write_type="THROUGH")
    assert names(engine, "/data/train") == {"a.bin", "b.bin", "new.bin", "up.bin"}
    # A directory never loaded has nothing to serve.
    with pytest.raises(Unavailable):
        engine.sync.listdir("/data/val")
    with pytest.raises(Unavailable):
        engine.fs.read("/data/val/c.bin", 0, 10)

    proxy.clear()  # the store is back
    engine.sync.retry_after_s = 0  # and the back-off over
    assert names(engine, "/data/val") == {"c.bin"}
    assert engine.fs.read("/data/val/c.bin", 0, 1000) == b"c" * 100


def test_after_a_restart_the_interval_counts_from_the_last_listing(
    proxy: FaultProxy, s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = behind(proxy, s3_server, sync_interval="3600")
    fill(store)
    home = ssd_home()
    engine = open_engine(home)
    load(engine, store)
    engine.close()
    store.put("train/new.bin", b"n")

    engine = open_engine(home)
    proxy.clear()
    assert names(engine, "/data/train") == {"a.bin", "b.bin"}  # listed less than an hour ago
    assert proxy.requests == []  # nothing was asked of the store
    # The listing of /data/train, marked as made two hours ago: due at the next start.
    from engine.listingmarks import listing_mark

    train = engine.sync.lookup("/data/train")
    mount = engine.mounts.mount_of(train.id)
    assert mount is not None
    two_hours_ago = time.time_ns() - 7200 * 10**9
    with engine.gate.lock:
        mark = listing_mark(mount.time, two_hours_ago)
        engine.gate.commit(E.UfsFingerprint(train.id, mark, 0, train.mtime, two_hours_ago))
    engine.close()
    engine = open_engine(home)
    assert names(engine, "/data/train") == {"a.bin", "b.bin", "new.bin"}


def test_a_failed_look_is_retried_after_a_back_off_not_on_every_call(
    proxy: FaultProxy, s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = behind(proxy, s3_server, sync_interval="0")  # every access looks at the store
    fill(store)
    engine = open_engine(ssd_home())
    load(engine, store)
    engine.sync.retry_after_s = 3600

    down(proxy)
    assert names(engine, "/data/train") == {"a.bin", "b.bin"}  # looked, failed: stale
    tried = len(proxy.requests)
    assert tried >= 2  # (the two attempts of one request at least)
    for _ in range(3):
        assert names(engine, "/data/train") == {"a.bin", "b.bin"}
        assert engine.fs.read("/data/train/a.bin", 0, len(A)) == A
    with pytest.raises(Unavailable, match="never listed"):
        engine.sync.listdir("/data/val")  # never loaded: an error, without asking again
    assert len(proxy.requests) == tried  # nobody asked the store during the back-off
    with pytest.raises(Unavailable):
        engine.sync.sync("/data/train")  # an explicit sync asks, and reports the failure
    with pytest.raises(Unavailable):
        engine.sync.listdir("/data/train", 0)  # so does a listing asked for now (ls --sync)

    proxy.clear()
    store.put("train/d.bin", b"d")
    engine.sync.retry_after_s = 0  # the back-off is over: the next access looks again
    assert names(engine, "/data/train") == {"a.bin", "b.bin", "d.bin"}
    assert names(engine, "/data/val") == {"c.bin"}


def test_while_one_caller_looks_again_at_a_hanging_store_the_others_are_answered(
    proxy: FaultProxy, s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = behind(proxy, s3_server, sync_interval="0")
    fill(store)
    engine = open_engine(ssd_home())
    load(engine, store)
    down(proxy)
    assert names(engine, "/data/train") == {"a.bin", "b.bin"}  # looked, failed: stale

    proxy.clear()
    stall = Fault("stall", 1, keep=10, method="GET")
    proxy.add(stall)  # the next listing hangs halfway through its reply, until released
    store.put("train/d.bin", b"d")
    engine.sync.retry_after_s = 0  # the back-off is over: the next access looks again
    with ThreadPoolExecutor(1) as pool:
        fresh = pool.submit(names, engine, "/data/train")
        deadline = time.monotonic() + 60
        while not proxy.requests and time.monotonic() < deadline:
            time.sleep(0.01)  # until its listing has reached the store
        assert proxy.requests, "the look never reached the store"
        for _ in range(3):  # meanwhile the others are answered, not held, and ask nothing
            assert names(engine, "/data/train") == {"a.bin", "b.bin"}
        assert len(proxy.requests) == 1
        stall.release.set()
        assert fresh.result(timeout=60) == {"a.bin", "b.bin", "d.bin"}
    assert names(engine, "/data/train") == {"a.bin", "b.bin", "d.bin"}


def test_a_listing_cut_short_is_not_taken_for_a_loaded_directory(
    proxy: FaultProxy, s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = behind(proxy, s3_server, page_size="1")  # one LIST request per entry
    for i in range(4):
        store.put(f"big/f{i}", b"x")
    home = ssd_home()
    engine = open_engine(home)
    engine.ns.mkdir("/data")
    engine.mounts.mount("/data", store.uri, store.options)
    assert names(engine, "/data") == {"big"}
    proxy.clear()
    proxy.add(Fault("delay", 2, seconds=0, method="GET"))  # two pages are served...
    proxy.add(Fault("drop", -1))  # ...then the store goes down
    with pytest.raises(Unavailable):
        engine.sync.listdir("/data/big")
    engine.close()

    engine = open_engine(home)
    engine.sync.retry_after_s = 0  # every access looks again
    with pytest.raises(Unavailable, match="unreachable"):
        engine.sync.listdir("/data/big")  # half a listing is not a listing
    proxy.clear()
    assert names(engine, "/data/big") == {"f0", "f1", "f2", "f3"}


def test_a_directory_mounted_again_is_listed_again(
    proxy: FaultProxy, s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = behind(proxy, s3_server)
    fill(store)
    engine = open_engine(ssd_home())
    load(engine, store)
    engine.mounts.unmount("/data")
    engine.mounts.mount("/data", store.uri, store.options)
    down(proxy)
    with pytest.raises(Unavailable):  # its listing mark is of the mount before
        engine.sync.listdir("/data")


def test_fsck_finds_a_directory_fingerprint_that_is_not_a_listing_mark(
    open_engine: OpenEngine,
) -> None:
    from recovery.fsck import check_listing_marks

    engine = open_engine()
    node = engine.ns.mkdir("/d")
    assert check_listing_marks(engine.state) == []
    with engine.gate.lock:
        engine.gate.commit(E.UfsFingerprint(node.id, "etag-1", 0, node.mtime, node.mtime))
    assert check_listing_marks(engine.state) == [
        f"directory {node.id}: UFS fingerprint 'etag-1' is not a listing mark"
    ]
    with engine.gate.lock:  # mended, so that the engine closes with a clean fsck
        engine.gate.commit(E.Delete(node.id, 1, "d", node.mtime))

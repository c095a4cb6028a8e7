"""Uploads racing the changes that make them stale, and data that exists only in the cache
(issue 14, defects 1 and 3).

An ASYNC_THROUGH upload is held in flight by a fault proxy in front of the S3 server while the
file is deleted, renamed or rewritten: the change must leave the UFS as the namespace says (no
deleted file comes back, no renamed file stays under its old name, no old content lands over
the new). A file whose content is only in the cache is kept on a durable tier, survives a
reboot (the MEM tier emptied), and when its bytes are lost anyway, start-up, `shoal report`
and `shoal fsck` say so.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from engine.cache.report import cache_report
from engine.engine import Engine
from engine.errors import NoSpace
from engine.inode import PERSISTED
from recovery.fsck import run_checks
from tests.cli.shoal_cli import shoal
from tests.homes import write_config
from tests.invariants import CheckedEngine, OpenEngine
from tests.ufs.stores import LocalStore, S3Store

KiB = 1 << 10
HOLD_S = 2.0  # how long the proxy holds an upload's PUT: the change happens meanwhile


@pytest.fixture
def uploading(
    s3_server: S3Server, proxy: FaultProxy, home: Path, tmp_path: Path, open_engine: OpenEngine
) -> tuple[CheckedEngine, FaultProxy, S3Store]:
    """An engine whose mount reaches an empty bucket through the fault proxy."""
    store = S3Store(s3_server)
    write_config(home, block_size=64 * KiB, tiers=[("SSD", tmp_path / "ssd", "8MiB")])
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {**store.options, "endpoint": proxy.endpoint})
    engine.sync.listdir("/")
    proxy.clear()
    return engine, proxy, store


def upload_in_flight(engine: Engine, proxy: FaultProxy, path: str, data: bytes) -> None:
    """Writes ``path`` ASYNC_THROUGH and returns once its upload has reached the proxy, which
    holds it before passing it on to the store."""
    proxy.add(Fault("delay", 1, seconds=HOLD_S, method="PUT"))
    engine.fs.write_file(path, io.BytesIO(data), write_type="ASYNC_THROUGH")
    deadline = time.monotonic() + 60
    while not any(method == "PUT" for method, _ in proxy.requests):
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.01)


def test_delete_during_upload_leaves_nothing_in_the_ufs(
    uploading: tuple[CheckedEngine, FaultProxy, S3Store],
) -> None:
    engine, proxy, store = uploading
    upload_in_flight(engine, proxy, "/doomed.bin", os.urandom(150 * KiB))
    engine.fs.delete("/doomed.bin")
    assert "doomed.bin" not in store.keys()  # acknowledged: the upload cannot land later
    assert engine.persister is not None
    engine.persister.drain()
    engine.close()  # a clean shutdown lets uploads under way finish
    assert "doomed.bin" not in store.keys()


def test_rename_during_upload_moves_the_object(
    uploading: tuple[CheckedEngine, FaultProxy, S3Store],
) -> None:
    engine, proxy, store = uploading
    data = os.urandom(150 * KiB)
    upload_in_flight(engine, proxy, "/old.bin", data)
    engine.fs.rename("/old.bin", "/new.bin")
    assert engine.persister is not None
    engine.persister.drain()
    assert "old.bin" not in store.keys()  # not left behind under its old name
    assert store.get("new.bin") == data
    assert engine.ns.lookup("/new.bin").flags & PERSISTED


def test_rewrite_during_upload_keeps_the_new_content(
    uploading: tuple[CheckedEngine, FaultProxy, S3Store],
) -> None:
    engine, proxy, store = uploading
    upload_in_flight(engine, proxy, "/f.bin", os.urandom(150 * KiB))
    new = os.urandom(90 * KiB)
    engine.fs.write_file("/f.bin", io.BytesIO(new), write_type="THROUGH")
    assert engine.persister is not None
    engine.persister.drain()
    assert store.get("f.bin") == new  # the old version's upload did not land over it
    assert engine.fs.read("/f.bin", 0, 1 << 20) == new


def test_delete_of_a_rewritten_file_removes_its_old_copy(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    """A persisted file rewritten into the cache only (its new content not uploaded yet) still
    has its old content in the UFS: deleting it must remove that too."""
    store = LocalStore(tmp_path / "ufs")
    write_config(home, block_size=64 * KiB, tiers=[("SSD", tmp_path / "ssd", "8MiB")])
    engine = open_engine()
    engine.mounts.mount("/", store.uri)
    engine.fs.write_file("/f.bin", io.BytesIO(b"old" * 1000), write_type="THROUGH")
    engine.fs.write_file("/f.bin", io.BytesIO(b"new" * 1000), write_type="MUST_CACHE")
    engine.fs.delete("/f.bin")
    assert "f.bin" not in store.keys()


# -- data only in the cache ------------------------------------------------------------------


def two_tiers(home: Path, tmp_path: Path, mem_quota: str = "8MiB") -> None:
    """A volatile MEM tier (as on /dev/shm) above a durable SSD tier."""
    write_config(
        home,
        block_size=64 * KiB,
        tiers=[("MEM", tmp_path / "mem", mem_quota), ("SSD", tmp_path / "ssd", "8MiB")],
    )


def written_on_two_tiers(
    home: Path, tmp_path: Path, open_engine: OpenEngine, data: bytes, write_type: str
) -> Engine:
    """An engine on two tiers (as above) with a local UFS at its root and /f.bin holding
    ``data``, written ``write_type``."""
    two_tiers(home, tmp_path)
    engine = open_engine()
    engine.mounts.mount("/", LocalStore(tmp_path / "ufs").uri)
    engine.fs.write_file("/f.bin", io.BytesIO(data), write_type=write_type)
    return engine


def tiers_of(engine: Engine, path: str) -> set[str]:
    node = engine.ns.lookup(path)
    return {info.tier for info in engine.state.blocks[node.id].values()}


@pytest.mark.parametrize("write_type", ["MUST_CACHE", "ASYNC_THROUGH"])
def test_cache_only_blocks_go_to_a_durable_tier(
    tmp_path: Path, home: Path, open_engine: OpenEngine, write_type: str
) -> None:
    engine = written_on_two_tiers(home, tmp_path, open_engine, os.urandom(200 * KiB), write_type)
    assert tiers_of(engine, "/f.bin") == {"SSD"}  # as the write was acknowledged


def test_promotion_keeps_cache_only_blocks_durable(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    data = os.urandom(200 * KiB)
    engine = written_on_two_tiers(home, tmp_path, open_engine, data, "MUST_CACHE")
    assert engine.fs.read("/f.bin", 0, len(data), read_type="CACHE_PROMOTE") == data
    assert engine.cache is not None
    engine.cache.drain()
    assert tiers_of(engine, "/f.bin") == {"SSD"}


def test_cache_only_file_survives_a_reboot(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    data = os.urandom(300 * KiB)
    engine = written_on_two_tiers(home, tmp_path, open_engine, data, "MUST_CACHE")
    engine.close()
    shutil.rmtree(tmp_path / "mem", ignore_errors=True)  # a reboot empties /dev/shm
    engine = open_engine()
    assert engine.fs.read("/f.bin", 0, len(data)) == data


def test_no_durable_tier_refuses_cache_only_writes(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    write_config(home, block_size=64 * KiB, tiers=[("MEM", tmp_path / "mem", "8MiB")])
    engine = open_engine()
    store = LocalStore(tmp_path / "ufs")
    engine.mounts.mount("/", store.uri)
    with pytest.raises(NoSpace, match="durable"):
        engine.fs.write_file("/f.bin", io.BytesIO(b"x" * 1000), write_type="MUST_CACHE")
    assert "f.bin" not in engine.ns.tree.root.children  # type: ignore[operator]
    engine.fs.write_file("/t.bin", io.BytesIO(b"y" * 1000), write_type="CACHE_THROUGH")
    assert tiers_of(engine, "/t.bin") == {"MEM"}  # persisted content may live in memory
    assert store.get("t.bin") == b"y" * 1000


def test_lost_cache_only_bytes_are_reported(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Blocks of a MUST_CACHE file and of an ASYNC_THROUGH file whose upload fails vanish
    from the disk: fsck names both checks, start-up logs the pending one, and so does
    `shoal report`."""
    write_config(home, block_size=64 * KiB, tiers=[("SSD", tmp_path / "ssd", "8MiB")])
    ufs = LocalStore(tmp_path / "ufs")
    engine = Engine.open_home(str(home))
    try:
        engine.mounts.mount("/", ufs.uri)
        engine.sync.listdir("/")
        (ufs.root / "pending.bin").mkdir()  # behind Shoal's back: the upload cannot replace it
        engine.fs.write_file("/only.bin", io.BytesIO(b"m" * 100_000), write_type="MUST_CACHE")
        pending_data = io.BytesIO(b"p" * 100_000)
        engine.fs.write_file("/pending.bin", pending_data, write_type="ASYNC_THROUGH")
        assert engine.persister is not None
        engine.persister.drain()
        only, pending = engine.ns.lookup("/only.bin").id, engine.ns.lookup("/pending.bin").id
        assert pending in engine.state.persists  # its upload failed: still pending
    finally:
        engine.close()
    for file in (only, pending):
        shutil.rmtree(tmp_path / "ssd" / str(file))  # a disk lost them

    report = shoal("fsck", home=home, expect=1)  # before any start: the map still lists them
    assert "FAIL  pending-bytes" in report.stdout and "FAIL  ack-blocks" in report.stdout
    assert "/pending.bin" in report.stdout and "/only.bin" in report.stdout

    with caplog.at_level(logging.ERROR, logger="engine.engine"):
        engine = Engine.open_home(str(home))  # reconciles: the blocks leave the map
    try:
        assert any(
            "pending persist without its bytes" in r.message and "/pending.bin" in r.message
            for r in caplog.records
        )
        with engine.gate.lock:
            failed = {r.check.name: r.failures for r in run_checks(engine.state) if not r.ok}
        assert set(failed) == {"pending-bytes", "ack-blocks"}
        assert ["/pending.bin" in line for line in failed["pending-bytes"]] == [True]
        assert sorted(line.split()[0] for line in failed["ack-blocks"]) == [
            "/only.bin", "/pending.bin"
        ]  # fmt: skip
        assert engine.cache is not None
        lost = cache_report(engine.cache)["persists_without_bytes"]
        assert len(lost) == 1 and "/pending.bin" in lost[0]  # type: ignore[index,arg-type]
    finally:
        engine.close()
    text = shoal("report", home=home).stdout
    assert "pending persists without their bytes 1" in text and "/pending.bin" in text

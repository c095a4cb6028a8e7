"""THROUGH writes: below a mount, create, write, rename and delete reach the UFS (a local
directory, and S3 on moto over HTTP) before the namespace records them; a failing UFS leaves
the namespace and the journal untouched."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from engine.errors import NotFound, ReadOnly, Unavailable
from tests.cli.shoal_cli import shoal
from tests.invariants import OpenEngine
from tests.ufs.contract import MiB, PatternStream
from tests.ufs.stores import S3Store, Store


def test_writes_reach_the_ufs(
    store: Store, tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    engine = open_engine()
    try:
        fs = engine.fs
        fs.makedirs("/m")
        engine.mounts.mount("/m", store.uri, store.options)
        fs.makedirs("/m/train/cls1")
        fs.write_file("/m/train/cls1/img0.jpg", io.BytesIO(b"jpeg-0" * 1000))
        fs.write_file("/m/train/cls1/img1.jpg", io.BytesIO(b"jpeg-1" * 1000))
        big = PatternStream(20 * MiB, seed=3)
        fs.write_file("/m/shard-000.tar", big)  # type: ignore[arg-type]
        assert fs.read("/m/train/cls1/img1.jpg", 6, 6) == b"jpeg-1"
        fs.write_file("/m/train/cls1/img0.jpg", io.BytesIO(b"replaced"))  # overwrite
        fs.rename("/m/train/cls1/img1.jpg", "/m/train/renamed.jpg")
        fs.makedirs("/m/tmp/deep")
        fs.write_file("/m/tmp/deep/x", io.BytesIO(b"x"))
        fs.delete("/m/tmp", recursive=True)
        fs.rename("/m/train/cls1", "/m/train/class-one")  # a directory
        node = engine.sync.lookup("/m/train/class-one/img0.jpg")
        assert node.size == len(b"replaced")
    finally:
        engine.close()
    keys = {k for k in store.keys() if not k.endswith("/")}
    assert keys == {"train/class-one/img0.jpg", "train/renamed.jpg", "shard-000.tar"}
    assert store.get("train/class-one/img0.jpg") == b"replaced"
    assert store.get("train/renamed.jpg") == b"jpeg-1" * 1000
    assert hashlib.sha256(store.get("shard-000.tar")).hexdigest() == big.digest.hexdigest()
    # The namespace after a restart agrees with the UFS, without any sync.
    engine = open_engine()
    try:
        assert sorted(n.name for n in engine.ns.listdir("/m/train")) == ["class-one", "renamed.jpg"]
        with pytest.raises(NotFound):
            engine.ns.lookup("/m/tmp")
    finally:
        engine.close()
    # The CLI does the same: put, cat, mv, rm.
    local = tmp_path / "local.bin"
    local.write_bytes(b"from the CLI")
    shoal("fs", "put", str(local), "/m/cli.bin", home=home)
    assert shoal("fs", "cat", "/m/cli.bin", home=home).stdout == "from the CLI"
    shoal("fs", "mv", "/m/cli.bin", "/m/train", home=home)
    assert store.get("train/cli.bin") == b"from the CLI"
    shoal("fs", "rm", "/m/train/cli.bin", home=home)
    assert "train/cli.bin" not in store.keys()


def test_a_readonly_mount_refuses_before_the_ufs(store: Store, open_engine: OpenEngine) -> None:
    store.put("kept", b"k")
    engine = open_engine()
    try:
        engine.fs.makedirs("/ro")
        engine.mounts.mount("/ro", store.uri, store.options, readonly=True)
        with pytest.raises(ReadOnly):
            engine.fs.write_file("/ro/new", io.BytesIO(b"x"))
        with pytest.raises(ReadOnly):
            engine.fs.delete("/ro/kept")
        with pytest.raises(ReadOnly):
            engine.fs.mkdir("/ro/dir")
    finally:
        engine.close()
    assert {k for k in store.keys() if not k.endswith("/")} == {"kept"}


def test_a_failing_store_leaves_namespace_and_journal_untouched(
    s3_server: S3Server, proxy: FaultProxy, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    engine = open_engine()
    try:
        engine.fs.makedirs("/s3")
        options = {**store.options, "endpoint": proxy.endpoint, "max_attempts": "2"}
        options.update(multipart_threshold=str(8 * MiB), multipart_chunk=str(8 * MiB))
        engine.mounts.mount("/s3", store.uri, options)
        engine.fs.write_file("/s3/ok", io.BytesIO(b"fine"))
        before = engine.journal.last_seq
        proxy.add(Fault("status", -1, status=500, method="PUT", query="partNumber=2"))
        with pytest.raises(Unavailable):
            engine.fs.write_file("/s3/half", PatternStream(24 * MiB))  # type: ignore[arg-type]
        proxy.add(Fault("status", -1, status=503, method="DELETE"))
        with pytest.raises(Unavailable):
            engine.fs.delete("/s3/ok")
        assert engine.journal.last_seq == before  # nothing journaled
        assert sorted(n.name for n in engine.ns.listdir("/s3")) == ["ok"]
    finally:
        engine.close()
    assert {k for k in store.keys() if not k.endswith("/")} == {"ok"}


@pytest.mark.parametrize("through", ["THROUGH", "CACHE_THROUGH"])
def test_a_cache_only_file_rewritten_through_the_ufs_serves_the_new_bytes(
    store: Store, open_engine: OpenEngine, through: str
) -> None:
    """Its old content was only in the cache (no UFS fingerprint): the write through the UFS
    must still start a new content version, or the old cached blocks keep being served."""
    engine = open_engine()
    engine.ns.mkdir("/data")
    engine.mounts.mount("/data", store.uri, store.options)
    engine.fs.write_file("/data/f", io.BytesIO(b"<"), write_type="MUST_CACHE")
    engine.fs.write_file("/data/f", io.BytesIO(b"<2"), write_type=through)
    assert engine.fs.read("/data/f", 0, 100) == b"<2"
    engine.close()
    engine = open_engine()  # and so says the journal
    assert engine.fs.read("/data/f", 0, 100) == b"<2"

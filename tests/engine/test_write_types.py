"""Write types: MUST_CACHE, CACHE_THROUGH, THROUGH, ASYNC_THROUGH (on a local UFS and on S3),
a cache that cannot make room, and kill -9 during ASYNC_THROUGH writes: every acknowledged file
reaches the UFS intact after the restart."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from engine.engine import Engine
from engine.errors import NoSpace
from engine.inode import PERSISTED
from tests.engine.content import content
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import S3Store, Store

ROOT = Path(__file__).resolve().parents[2]


def test_each_write_type(store: Store, ssd_home: SsdHome, open_engine: OpenEngine) -> None:
    engine = open_engine(ssd_home())
    try:
        fs = engine.fs
        fs.makedirs("/m")
        engine.mounts.mount("/m", store.uri, store.options)
        for kind in ("MUST_CACHE", "CACHE_THROUGH", "THROUGH", "ASYNC_THROUGH"):
            fs.write_file(f"/m/{kind}", io.BytesIO(content(len(kind))), write_type=kind)
            assert fs.read(f"/m/{kind}", 0, 1 << 20) == content(len(kind))
        keys = store.keys()
        assert "MUST_CACHE" not in keys  # cache only
        assert {"CACHE_THROUGH", "THROUGH"} <= keys
        assert engine.persister is not None
        engine.persister.drain()
        assert store.get("ASYNC_THROUGH") == content(len("ASYNC_THROUGH"))
        assert not engine.state.persists
        node = engine.sync.lookup("/m/ASYNC_THROUGH")
        assert node.flags & PERSISTED
        cached = {engine.sync.lookup(f"/m/{k}").id for k in ("MUST_CACHE", "CACHE_THROUGH")}
        assert cached <= set(engine.state.blocks)
    finally:
        engine.close()


@pytest.fixture
def small_cache(store: Store, ssd_home: SsdHome, open_engine: OpenEngine) -> Engine:
    """An engine whose cache holds 256 KiB, with ``store`` mounted at its root (fsck-checked
    and closed after the test)."""
    engine = open_engine(ssd_home(quota="256KiB"))
    engine.mounts.mount("/", store.uri, store.options)
    return engine


def test_a_full_cache_says_no_space_and_leaves_nothing(store: Store, small_cache: Engine) -> None:
    engine = small_cache
    engine.fs.write_file("/small", io.BytesIO(b"x" * 100_000), write_type="MUST_CACHE")
    with pytest.raises(NoSpace, match="no room"):
        engine.fs.write_file("/big", io.BytesIO(b"y" * 400_000), write_type="MUST_CACHE")
    assert [n.name for n in engine.ns.listdir("/")] == ["small"]
    assert engine.fs.read("/small", 0, 10) == b"x" * 10  # unpersisted data is never evicted
    # An edit of a file the UFS holds that finds no room leaves the UFS's copy in place.
    engine.fs.write_file("/kept", io.BytesIO(b"k" * 50_000), write_type="THROUGH")
    with pytest.raises(NoSpace):
        engine.fs.write_file("/kept", io.BytesIO(b"n" * 400_000), write_type="ASYNC_THROUGH")
    kept = engine.sync.lookup("/kept")
    assert kept.size == 50_000 and kept.flags & PERSISTED
    assert engine.fs.read("/kept", 0, 1 << 20) == b"k" * 50_000
    assert store.get("kept") == b"k" * 50_000


def test_an_overwrite_that_cannot_fit_keeps_a_cache_only_file(
    small_cache: Engine, tmp_path: Path
) -> None:
    fs = small_cache.fs
    fs.write_file("/only", io.BytesIO(b"o" * 150_000), write_type="MUST_CACHE")
    fs.write_file("/other", io.BytesIO(b"t" * 60_000), write_type="MUST_CACHE")
    # Its only copy is in the cache, which cannot hold the new content: refused up front.
    with pytest.raises(NoSpace, match="the file keeps its content"):
        fs.write_file("/only", io.BytesIO(b"n" * 250_000), write_type="MUST_CACHE")
    path = tmp_path / "new-content"
    path.write_bytes(b"n" * 250_000)
    with open(path, "rb") as source, pytest.raises(NoSpace, match="keeps its content"):
        fs.write_file("/only", source, write_type="ASYNC_THROUGH")
    assert fs.read("/only", 0, 1 << 20) == b"o" * 150_000
    # The old content stays until the new one is committed (a crash meanwhile must leave one of
    # them whole), so both must fit: its own old blocks' room does not count...
    with pytest.raises(NoSpace, match="keeps its content"):
        fs.write_file("/only", io.BytesIO(b"m" * 190_000), write_type="MUST_CACHE")
    assert fs.read("/only", 0, 1 << 20) == b"o" * 150_000
    # ...and once they are replaced it is free again.
    fs.write_file("/only", io.BytesIO(b"m" * 50_000), write_type="MUST_CACHE")
    fs.write_file("/only", io.BytesIO(b"p" * 150_000), write_type="MUST_CACHE")
    assert fs.read("/only", 0, 1 << 20) == b"p" * 150_000
    assert fs.read("/other", 0, 1 << 20) == b"t" * 60_000


WRITER = textwrap.dedent(
    """
    import io, sys
    from engine.engine import Engine
    from tests.engine.content import content

    engine = Engine.open_home(sys.argv[1])
    for i in range(100_000):
        data = io.BytesIO(content(i))
        engine.fs.write_file(f"/s3/out/f{i:05d}", data, write_type="ASYNC_THROUGH")
        print(f"ACK {i}", flush=True)
    """
)


def test_kill9_during_async_through_writes(
    s3_server: S3Server, proxy: FaultProxy, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    home = ssd_home(quota="256MiB")
    engine = open_engine()
    try:
        engine.fs.makedirs("/s3")
        engine.mounts.mount("/s3", store.uri, {**store.options, "endpoint": proxy.endpoint})
        engine.fs.makedirs("/s3/out")
    finally:
        engine.close()
    proxy.add(Fault("delay", -1, seconds=0.2, method="PUT"))  # uploads lag behind writes
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    acked = []
    for line in proc.stdout:
        acked.append(int(line.split()[1]))
        if len(acked) >= 40:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    engine = open_engine()  # resumes the pending persists
    try:
        assert engine.persister is not None
        pending_at_start = len(engine.state.persists)
        engine.persister.drain()
        assert pending_at_start > 0, "the kill left nothing pending: the test proved nothing"
        assert not engine.state.persists
    finally:
        engine.close()
    for i in acked:
        assert store.get(f"out/f{i:05d}") == content(i), f"acknowledged file {i} is wrong"

"""What a store's failures look like to the engine: a writer killed mid-write leaves nothing at
the next start (and a user's files are never mistaken for its leftovers), a full store is
NoSpace (ENOSPC), and a store that never answers fails a read by the read deadline with
Unavailable (EIO), however many attempts the connector would still make."""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from engine.config import load_config
from engine.errors import InvalidArgument, NoSpace, Unavailable
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.contract import MiB, PatternStream
from tests.ufs.stores import S3Store, small_filesystem
from ufs import tempfiles

ROOT = Path(__file__).resolve().parents[2]
# A Shoal process writing a file below its mount from its stdin, which never ends.
WRITER = (
    "import sys\n"
    "from engine.engine import Engine\n"
    "Engine.open_home(sys.argv[1]).fs.write_file('/big.bin', sys.stdin.buffer)\n"
)


def test_a_killed_writers_leftover_is_removed_at_the_next_start(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    (ufs / ".shoal-tmp-foo").write_bytes(b"a user's own file")
    engine = open_engine()
    engine.mounts.mount("/", str(ufs))
    engine.close()

    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(home)], cwd=ROOT,
                            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"x" * (2 * MiB))
        proc.stdin.flush()
        limit = time.monotonic() + 60  # the test's own limit; the writer is there in a second
        while time.monotonic() < limit:
            names = [p.name for p in ufs.iterdir() if p.name != ".shoal-tmp-foo"]
            if names and (ufs / names[0]).stat().st_size > 0:
                break
            time.sleep(0.02)
        assert len(names) == 1 and names[0].startswith(".shoal-tmp-"), names
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: its temporary file stays behind
        proc.wait()

    engine = open_engine()
    engine.mounts.wait_for_cleanups()  # the sweep the start began, before any use of the mount
    assert os.listdir(ufs) == [".shoal-tmp-foo"]
    assert [n.name for n in engine.sync.listdir("/")] == [".shoal-tmp-foo"]
    assert engine.fs.read("/.shoal-tmp-foo", 0, 100) == b"a user's own file"


def test_a_mount_sweeps_its_store_unless_it_is_read_only(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    me = tempfiles.this_writer()
    # This process's pid with another start time: an earlier process, gone, that had the pid.
    dead = tempfiles.name_for(dataclasses.replace(me, start=me.start + 1), "3" * 16)
    for name in ("rw", "ro"):
        (tmp_path / name).mkdir()
        (tmp_path / name / dead).write_bytes(b"left by a dead writer")
    engine = open_engine()
    engine.fs.makedirs("/rw")
    engine.fs.makedirs("/ro")
    engine.mounts.mount("/rw", str(tmp_path / "rw"))
    engine.mounts.mount("/ro", str(tmp_path / "ro"), readonly=True)
    engine.mounts.wait_for_cleanups()
    assert os.listdir(tmp_path / "rw") == []
    assert os.listdir(tmp_path / "ro") == [dead]  # a read-only mount never changes its store
    assert engine.sync.listdir("/ro") == []  # but the file is still not a file of the namespace
    engine.close()
    engine = open_engine()
    engine.mounts.wait_for_cleanups()
    assert os.listdir(tmp_path / "ro") == [dead]


def test_a_full_local_store_is_no_space(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    with small_filesystem(tmp_path / "small") as small:
        engine = open_engine()
        try:
            engine.mounts.mount("/", str(small))
            engine.fs.write_file("/kept.bin", io.BytesIO(b"old"))
            with pytest.raises(NoSpace) as info:
                engine.fs.write_file("/big.bin", PatternStream(4 * MiB))  # type: ignore[arg-type]
            assert info.value.errno == errno.ENOSPC
            assert "big.bin" in str(info.value)
            assert engine.fs.read("/kept.bin", 0, 10) == b"old"
            assert os.listdir(small) == ["kept.bin"]
        finally:
            engine.close()


def test_a_store_that_never_answers_fails_a_read_by_the_deadline(
    s3_server: S3Server, proxy: FaultProxy, home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    data = os.urandom(200_000)
    store.put("data.bin", data)
    write_config(home, "[ufs]", "read_deadline_s = 1", block_size=65536,
                 tiers=[("SSD", tmp_path / "ssd", "8MiB")])  # fmt: skip
    engine = open_engine()
    # The connector alone would wait max_attempts (5) x read_timeout_s (5 s) for a store that
    # holds every request: longer than this test's own limit below.
    options = {**store.options, "endpoint": proxy.endpoint, "read_timeout_s": "5"}
    engine.mounts.mount("/", store.uri, options)
    assert engine.sync.lookup("/data.bin").size == len(data)
    proxy.add(Fault("delay", -1, seconds=3600, method="GET"))  # held, never answered
    with ThreadPoolExecutor(2) as pool:
        reads = [pool.submit(engine.fs.read, "/data.bin", 0, 4096) for _ in range(2)]
        errors = [read.exception(timeout=20) for read in reads]
    for error in errors:
        assert isinstance(error, Unavailable), error
        assert error.errno == errno.EIO
        assert "/data.bin" in str(error) and "ufs.read_deadline_s" in str(error)
    proxy.clear()  # the store answers again: the held attempt times out, the next one succeeds
    assert engine.cache is not None
    engine.cache.drain()
    assert engine.fs.read("/data.bin", 0, 4096) == data[:4096]


def test_the_read_deadline_is_a_positive_number_of_seconds(tmp_path: Path) -> None:
    assert load_config(str(tmp_path)).ufs_read_deadline_s == 45.0
    cfg = load_config(str(tmp_path), overrides={"ufs.read_deadline_s": "2.5"})
    assert cfg.ufs_read_deadline_s == 2.5
    for bad in ("0", "-1", "soon", "nan", True):
        with pytest.raises(InvalidArgument, match="ufs.read_deadline_s.*positive number"):
            load_config(str(tmp_path), overrides={"ufs.read_deadline_s": bad})

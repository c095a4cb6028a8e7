"""A new file written THROUGH (or CACHE_THROUGH) a mount of S3 is uploaded while it is written
(ufs/s3parts.py): a multipart upload whose parts leave as they fill, completed with the tail at
close or fsync. Checked through real mounts of moto's S3 server over HTTP: the parts counted in
the store before the close, a write pattern that breaks the sequence, and a real kill -9.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server
from fuse.mountinfo import alive
from tests.cli.shoal_cli import env, shoal
from tests.fuse.mounting import Mounted, mounted
from tests.ufs.stores import S3Store

PART = 5 << 20  # S3's smallest part: the mount's multipart_chunk
MIB = 1 << 20
# fsck opens an S3 mount with the credentials of wherever it runs (the mount's own were handed
# to its daemon only).
AWS = env(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)


def _uploads(store: S3Store, key: str) -> list[str]:
    """The ids of the unfinished multipart uploads of ``key`` (below the mount's prefix)."""
    reply = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=f"ds/{key}")
    return [u["UploadId"] for u in reply.get("Uploads", ()) if u["Key"] == f"ds/{key}"]


def _parts_in_store(store: S3Store, key: str) -> int:
    """How many parts the store holds of ``key``'s unfinished upload (0 without one)."""
    total = 0
    for upload in _uploads(store, key):
        reply = store.client.list_parts(Bucket=store.bucket, Key=f"ds/{key}", UploadId=upload)
        total += len(reply.get("Parts", ()))
    return total


def _until(done: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Waits for ``done`` (work handed to the daemon's threads); a failure says what never
    happened. A wait, not a measure: nothing here is judged by how long it took."""
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


@contextlib.contextmanager
def _streamed(s3_server: S3Server, tmp_path: Path) -> Iterator[tuple[S3Store, Mounted]]:
    """The S3 store mounted with writes streamed to it (THROUGH, parts of PART bytes)."""
    store = S3Store(s3_server)
    with mounted(store, tmp_path, "write_type=THROUGH", f"multipart_chunk={PART}") as m:
        yield store, m


@pytest.mark.parametrize("write_type", ["THROUGH", "CACHE_THROUGH"])
def test_s3_large_through_write_sends_parts_before_close(
    s3_server: S3Server, tmp_path: Path, write_type: str
) -> None:
    store = S3Store(s3_server)
    with mounted(store, tmp_path, f"write_type={write_type}", f"multipart_chunk={PART}") as m:
        data = os.urandom(3 * PART + 3 * MIB)
        fd = os.open(m.path / "ckpt", os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            for at in range(0, len(data), MIB):
                os.write(fd, data[at : at + MIB])
            # Before close: the three whole parts reach the store, and no object is there.
            _until(lambda: _parts_in_store(store, "ckpt") == 3, "3 parts uploaded before close")
            assert "ckpt" not in store.keys()
        finally:
            os.close(fd)
        # THROUGH's promise: at close the store has the object, whole, with its mode.
        assert store.get("ckpt") == data
        assert int(store.metadata("ckpt")["mode"]) & 0o7777 == 0o640
        assert _uploads(store, "ckpt") == []
        assert (m.path / "ckpt").read_bytes() == data


@pytest.mark.parametrize("breaks", ["overwrite", "truncate"])
def test_s3_write_that_breaks_the_sequence_lands_the_right_bytes(
    s3_server: S3Server, tmp_path: Path, breaks: str
) -> None:
    with _streamed(s3_server, tmp_path) as (store, m):
        data = bytearray(os.urandom(2 * PART + MIB))
        fd = os.open(m.path / "f", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            _until(lambda: _parts_in_store(store, "f") == 2, "2 parts uploaded")
            if breaks == "overwrite":  # into a part the store has already
                os.pwrite(fd, b"X" * 1000, MIB)
                data[MIB : MIB + 1000] = b"X" * 1000
            else:  # down into the sent parts, then written on
                os.ftruncate(fd, PART + 100)
                del data[PART + 100 :]
                tail = os.urandom(2 * MIB)
                os.pwrite(fd, tail, len(data))
                data += tail
        finally:
            os.close(fd)
        assert store.get("f") == bytes(data)
        assert _uploads(store, "f") == []  # the broken upload was aborted, not left
        assert (m.path / "f").read_bytes() == bytes(data)


def test_s3_kill9_mid_write_leaves_no_object_and_its_upload_is_aborted(
    s3_server: S3Server, tmp_path: Path
) -> None:
    with _streamed(s3_server, tmp_path) as (store, m):
        (m.path / "kept").write_bytes(b"acknowledged")
        fd = os.open(m.path / "partial", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, os.urandom(2 * PART + MIB))
            _until(lambda: _parts_in_store(store, "partial") == 2, "2 parts uploaded")
            m.kill9()
        finally:
            with contextlib.suppress(OSError):  # the connection is gone
                os.close(fd)
        assert "partial" not in store.keys()  # nothing readable of the half-written file
        (upload,) = _uploads(store, "partial")
        out = shoal("fsck", home=m.home, expect=1, env=AWS).stdout
        assert "FAIL  multipart-uploads" in out and "ds/partial" in out
        assert _uploads(store, "partial") == [upload]  # fsck without --repair changes nothing
        m.mount("write_type=THROUGH", f"multipart_chunk={PART}")
        assert (m.path / "kept").read_bytes() == b"acknowledged"  # the mount's store opened
        _until(lambda: _uploads(store, "partial") == [], "the start aborted the leftover upload")
        partial = m.path / "partial"  # created, never closed: empty, if its name was durable
        assert not partial.exists() or partial.read_bytes() == b""
        m.umount()
        out = shoal("fsck", home=m.home, env=AWS).stdout
        assert "ok    multipart-uploads" in out and "clean" in out.splitlines()[-1]


def test_s3_fsck_repair_aborts_a_leftover_upload(s3_server: S3Server, tmp_path: Path) -> None:
    store = S3Store(s3_server)
    with mounted(store, tmp_path, "write_type=THROUGH") as m:
        (m.path / "d").mkdir()
        m.umount()
        # What a writer killed mid-write leaves: an upload with a part, and no object.
        key = "ds/d/left"
        upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
        store.client.upload_part(
            Bucket=store.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 100
        )
        out = shoal("fsck", "--repair", home=m.home, env=AWS).stdout
        assert "fix   multipart-uploads" in out and "1 aborted" in out
        assert _uploads(store, "d/left") == []


def test_s3_fsync_mid_file_completes_the_upload_and_later_writes_land_at_close(
    s3_server: S3Server, tmp_path: Path
) -> None:
    with _streamed(s3_server, tmp_path) as (store, m):
        first = os.urandom(PART + 2 * MIB)
        fd = os.open(m.path / "log", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, first)
            _until(lambda: _parts_in_store(store, "log") == 1, "1 part uploaded")
            os.fsync(fd)  # THROUGH: the store has the bytes when fsync returns
            assert store.get("log") == first and _uploads(store, "log") == []
            more = os.urandom(PART + MIB)
            os.write(fd, more)
            os.pwrite(fd, b"HEAD", 0)
        finally:
            os.close(fd)
        expect = b"HEAD" + first[4:] + more
        assert store.get("log") == expect
        assert _uploads(store, "log") == []
        assert (m.path / "log").read_bytes() == expect


def test_s3_daemon_stopped_mid_write_aborts_its_upload(s3_server: S3Server, tmp_path: Path) -> None:
    with _streamed(s3_server, tmp_path) as (store, m):
        fd = os.open(m.path / "open", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, os.urandom(2 * PART + MIB))
            _until(lambda: _parts_in_store(store, "open") == 2, "2 parts uploaded")
            pid = m.pid()
            assert pid is not None
            os.kill(pid, signal.SIGTERM)  # a clean stop, the file still open
            _until(lambda: not alive(pid), "the daemon stopped")
        finally:
            with contextlib.suppress(OSError):  # the connection is gone
                os.close(fd)
        # Nothing of the unclosed file in the store, and no upload left for a sweep (a clean
        # stop sweeps nothing at the next start).
        assert "open" not in store.keys() and _uploads(store, "open") == []


@pytest.mark.parametrize("change", ["rename", "chmod"])
def test_s3_file_renamed_or_chmodded_while_streamed_lands_as_it_is_at_close(
    s3_server: S3Server, tmp_path: Path, change: str
) -> None:
    with _streamed(s3_server, tmp_path) as (store, m):
        data = os.urandom(2 * PART + MIB)
        fd = os.open(m.path / "a", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, data[: 2 * PART])
            _until(lambda: _parts_in_store(store, "a") == 2, "2 parts uploaded")
            if change == "rename":  # the upload's key is the old name
                os.rename(m.path / "a", m.path / "b")
            else:  # the upload was created with the old mode
                os.chmod(m.path / "a", 0o600)
            os.write(fd, data[2 * PART :])
        finally:
            os.close(fd)
        name = "b" if change == "rename" else "a"
        assert store.get(name) == data
        assert int(store.metadata(name)["mode"]) & 0o7777 == (
            0o644 if change == "rename" else 0o600
        )
        assert store.keys() == {name}
        assert _uploads(store, "a") == []

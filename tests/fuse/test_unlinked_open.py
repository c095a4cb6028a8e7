"""A file unlinked while open stays usable through its open handles until the last close
(POSIX), on a real mount over a local UFS and over S3; nothing of it reaches the store, and a
kill -9 while it is open leaves no orphan, no leaked block and a clean fsck."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted, mounted
from tests.fuse.otheruser import nobody_says
from tests.ufs.stores import LocalStore, Store


def _store_has(m: Mounted, rel: str) -> bool:
    store: Store = m.store  # type: ignore[attr-defined]
    return rel in store.keys()


@pytest.mark.parametrize("write_type", ["THROUGH", "MUST_CACHE", "ASYNC_THROUGH"])
def test_unlinked_open_file_stays_usable(store: Store, tmp_path: Path, write_type: str) -> None:
    with mounted(store, tmp_path, f"write_type={write_type}") as m:
        f = m.path / "victim"
        data = os.urandom(300_000)
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
            os.unlink(f)
            assert not f.exists() and "victim" not in os.listdir(m.path)
            st = os.fstat(fd)
            assert st.st_nlink == 0 and st.st_size == len(data)
            assert os.pread(fd, len(data), 0) == data
            os.pwrite(fd, b"tail", len(data))
            os.fsync(fd)
            assert os.pread(fd, 10, len(data) - 6) == data[-6:] + b"tail"
            os.ftruncate(fd, 1000)
            assert os.fstat(fd).st_size == 1000
            assert os.pread(fd, 2000, 0) == data[:1000]
            os.fchmod(fd, 0o600)
            assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
        finally:
            os.close(fd)
        assert not f.exists()
        assert not _store_has(m, "victim")
        m.umount()
        assert not _store_has(m, "victim")
        assert "clean" in shoal("fsck", home=m.home).stdout


def test_reader_of_file_renamed_over_keeps_old_content(store: Store, tmp_path: Path) -> None:
    with mounted(store, tmp_path, "write_type=MUST_CACHE") as m:
        old, new = m.path / "old", m.path / "new"
        old.write_bytes(b"old content " * 1000)
        new.write_bytes(b"new content")
        fd = os.open(old, os.O_RDONLY)
        try:
            os.rename(new, old)
            assert old.read_bytes() == b"new content"
            assert os.fstat(fd).st_nlink == 0
            assert os.pread(fd, 12_000, 0) == b"old content " * 1000
        finally:
            os.close(fd)
        assert old.read_bytes() == b"new content"
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout


def test_hard_link_unlinked_while_open_is_no_orphan(local_mount: Mounted) -> None:
    a, b = local_mount.path / "a", local_mount.path / "b"
    a.write_bytes(b"shared")
    os.link(a, b)
    fd = os.open(a, os.O_RDWR)
    try:
        os.unlink(a)
        assert os.fstat(fd).st_nlink == 1
        os.pwrite(fd, b"SH", 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert b.read_bytes() == b"SHared"


def test_kill9_with_orphan_open_leaves_nothing(tmp_path: Path) -> None:
    with mounted(LocalStore(tmp_path / "ufs"), tmp_path, "write_type=MUST_CACHE") as m:
        f = m.path / "orphan"
        f.write_bytes(os.urandom(500_000))
        fd = os.open(f, os.O_RDONLY)
        assert len(os.pread(fd, 500_000, 0)) == 500_000
        os.unlink(f)
        m.kill9()
        try:
            os.close(fd)
        except OSError:
            pass  # the connection died with the daemon
        m.mount("write_type=MUST_CACHE")
        assert os.listdir(m.path) == []
        m.umount()
        report = shoal("fsck", home=m.home)
        assert "clean" in report.stdout, report.stdout
        orphans = [line for line in report.stdout.splitlines() if " orphans " in line]
        assert orphans and all(line.startswith("ok") for line in orphans), report.stdout


def test_reader_of_unlinked_file_never_cached_keeps_its_content(
    store: Store, tmp_path: Path
) -> None:
    # THROUGH, read type CACHE (the defaults): the content is only in the store until read,
    # and the store copy goes with the name, so the engine caches it before.
    with mounted(store, tmp_path, "write_type=THROUGH") as m:
        f = m.path / "big"
        data = os.urandom(3 << 20)
        f.write_bytes(data)
        fd = os.open(f, os.O_RDONLY)
        try:
            os.unlink(f)
            assert not _store_has(m, "big")
            assert os.pread(fd, len(data) + 1, 0) == data
        finally:
            os.close(fd)
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout


def test_open_file_outlives_its_directory(store: Store, tmp_path: Path) -> None:
    with mounted(store, tmp_path, "write_type=CACHE_THROUGH") as m:
        d = m.path / "d"
        d.mkdir()
        (d / "f").write_bytes(b"kept " * 5000)
        fd = os.open(d / "f", os.O_RDWR)
        try:
            os.unlink(d / "f")
            os.rmdir(d)
            assert not d.exists()
            assert os.pread(fd, 25_000, 0) == b"kept " * 5000
            os.pwrite(fd, b"KEPT", 0)
            assert os.pread(fd, 10, 0) == b"KEPT kept "
            assert os.fstat(fd).st_nlink == 0
        finally:
            os.close(fd)
        assert not {k for k in store.keys() if k.startswith("d")}
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout


def test_writer_of_file_renamed_over_keeps_its_own_content(store: Store, tmp_path: Path) -> None:
    with mounted(store, tmp_path) as m:
        target, new = m.path / "target", m.path / "new"
        target.write_bytes(b"before")
        fd = os.open(target, os.O_RDWR)
        try:
            os.pwrite(fd, b"unflushed writes ", 0)  # still in the write buffer
            new.write_bytes(b"the replacement")
            os.rename(new, target)
            os.pwrite(fd, b"and more", 17)
            os.fsync(fd)
            assert os.pread(fd, 100, 0) == b"unflushed writes and more"
        finally:
            os.close(fd)
        assert target.read_bytes() == b"the replacement"
        assert store.get("target") == b"the replacement"
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout


def test_non_root_user_keeps_its_unlinked_file(shared_any_mount: Mounted) -> None:
    """User nobody, through an allow_other mount, keeps reading, writing and changing its own
    file after unlinking it; nothing of it stays in the store."""
    d = shared_any_mount.path / "pub"
    out = nobody_says(
        f"p = {str(d / 'mine')!r}\n"
        "fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "os.write(fd, b'private bytes')\n"
        "os.fsync(fd)\n"
        "os.unlink(p)\n"
        "os.pwrite(fd, b' and more', 13)\n"
        "os.fchmod(fd, 0o400)\n"
        "st = os.fstat(fd)\n"
        "print(st.st_nlink, oct(st.st_mode & 0o777), st.st_uid, os.pread(fd, 100, 0).decode())\n"
        "os.close(fd)\n"
    )
    assert " ".join(out).split() == ["0", "0o400", "65534", "private", "bytes", "and", "more"]
    assert os.listdir(d) == []
    shared_any_mount.umount()
    assert not _store_has(shared_any_mount, "pub/mine")
    assert "clean" in shoal("fsck", home=shared_any_mount.home).stdout

"""Causes of failures an outside POSIX conformance suite found (docs/mount.md, "POSIX
conformance"), each checked through a real mount over a local UFS."""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
from pathlib import Path

from tests.fuse.mounting import Mounted

FUTURE_S = 1_900_000_000  # 2030: ahead of any clock this runs under
PAST_NS = 1_000_000_123


def _special_files(mnt: Path) -> list[Path]:
    os.mkfifo(mnt / "fifo", 0o644)
    os.mknod(mnt / "char", stat.S_IFCHR | 0o644, os.makedev(1, 3))
    os.mknod(mnt / "block", stat.S_IFBLK | 0o644, os.makedev(7, 0))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(mnt / "sock"))
    return [mnt / "fifo", mnt / "char", mnt / "block", mnt / "sock"]


def test_times_and_owners_of_special_files_can_be_set(local_mount: Mounted) -> None:
    """utimensat and then lchown of a fifo, a device or a socket over a local store: the store's
    copy is the real special file, and its changed mtime is no new content to record."""
    assert os.geteuid() == 0, "mknod of a device and chown need root"
    for path in _special_files(local_mount.path):
        os.utime(path, ns=(FUTURE_S * 10**9, PAST_NS), follow_symlinks=False)
        os.chown(path, 65534, 65534, follow_symlinks=False)
        st = os.lstat(path)
        assert (st.st_mtime_ns, st.st_uid, st.st_gid) == (PAST_NS, 65534, 65534), path.name
    local_mount.kill9()  # replayed from the journal, the same
    local_mount.teardown()
    local_mount.mount()
    st = os.lstat(local_mount.path / "sock")
    assert stat.S_ISSOCK(st.st_mode) and (st.st_mtime_ns, st.st_uid) == (PAST_NS, 65534)


def test_ctime_is_the_last_change_not_the_mtime_set(local_mount: Mounted) -> None:
    """touch -d of a future date must not move ctime into the future: ctime says when the file
    last changed, and tools (backup, make, rsync) compare it with the clock."""
    path = local_mount.path / "file"
    path.write_bytes(b"data")
    os.utime(path, (FUTURE_S, FUTURE_S))
    st = os.stat(path)
    assert st.st_mtime == FUTURE_S
    assert st.st_ctime < FUTURE_S
    before = st.st_ctime_ns
    os.utime(path)  # UTIME_NOW: a change, so ctime moves on
    assert os.stat(path).st_ctime_ns >= before
    # Content written through to the store moves ctime with mtime.
    os.utime(path, ns=(PAST_NS, PAST_NS))
    ctime = os.stat(path).st_ctime_ns
    # The store's clock is coarse (a kernel tick): step past it, so the write is later.
    time.sleep(0.05)
    with open(path, "ab") as f:
        f.write(b"more")
    st = os.stat(path)
    assert st.st_ctime_ns >= st.st_mtime_ns > ctime


def test_a_read_only_open_with_o_trunc_truncates(local_mount: Mounted) -> None:
    """Linux truncates on O_RDONLY|O_TRUNC when the caller may write (open(2)); shells and
    tools that open for reading with O_TRUNC expect an empty file."""
    path = local_mount.path / "file"
    path.write_bytes(b"hello")
    fd = os.open(path, os.O_RDONLY | os.O_TRUNC)
    try:
        assert os.read(fd, 10) == b""
    finally:
        os.close(fd)
    assert os.stat(path).st_size == 0
    assert local_mount.store.get("file") == b""  # type: ignore[attr-defined]


def test_a_directory_whose_linked_files_were_removed_can_be_removed(local_mount: Mounted) -> None:
    """Removing one name of a linked file hands its content to another name in the store
    (engine/links.py); that name already was the same file there, and no temporary name may
    stay behind to make the emptied directory's rmdir fail."""
    d = local_mount.path / "dir"
    d.mkdir()
    (d / "a").write_bytes(b"data")
    os.link(d / "a", d / "b")
    os.link(d / "b", d / "c")
    os.unlink(d / "a")
    assert (d / "c").read_bytes() == b"data" and os.stat(d / "c").st_nlink == 2
    os.unlink(d / "c")
    os.unlink(d / "b")
    os.rmdir(d)
    assert not (local_mount.store.root / "dir").exists()  # type: ignore[attr-defined]


def test_rmdir_of_a_directory_the_store_still_fills_is_enotempty(local_mount: Mounted) -> None:
    """A name added to the store behind the mount's back, not listed yet: the store refuses
    the rmdir, and the caller learns why (ENOTEMPTY, as rm -r and rsync expect)."""
    d = local_mount.path / "dir"
    d.mkdir()
    assert os.listdir(d) == []
    local_mount.store.put("dir/late", b"x")  # type: ignore[attr-defined]
    try:
        os.rmdir(d)
    except OSError as exc:
        assert exc.errno == errno.ENOTEMPTY, exc
    else:
        raise AssertionError("rmdir of a directory holding a file succeeded")
    assert local_mount.store.get("dir/late") == b"x"  # type: ignore[attr-defined]

"""POSIX details users' tools rely on, checked through a real mount other users may use
(``allow_other``): over a local UFS and over S3 (moto over HTTP) where the store plays no part,
over a local UFS where the test looks into it."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.fuse.mounting import Mounted
from tests.fuse.otheruser import NOBODY, as_nobody, nobody_says


def test_new_entries_belong_to_the_caller_with_its_umask(shared_any_mount: Mounted) -> None:
    mnt = shared_any_mount.path
    (mnt / "shared").mkdir()
    os.chmod(mnt / "shared", 0o1777)
    out = as_nobody(
        f"d = {str(mnt / 'shared')!r}\n"
        "os.mkdir(d + '/dir', 0o777)\n"
        "open(d + '/file', 'w').write('x')\n"
        "os.symlink('file', d + '/link')\n",
        umask=0o027,
    )
    assert out.returncode == 0, out.stderr
    st = os.stat(mnt / "shared" / "dir")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o750)
    st = os.stat(mnt / "shared" / "file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)
    st = os.lstat(mnt / "shared" / "link")
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY) and stat.S_ISLNK(st.st_mode)


def test_setgid_directory_passes_its_group_on(shared_any_mount: Mounted) -> None:
    d = shared_any_mount.path / "group"
    d.mkdir()
    os.chown(d, 0, 1234)
    os.chmod(d, 0o2775)
    (d / "file").write_text("x")
    (d / "sub").mkdir()
    assert os.stat(d / "file").st_gid == 1234
    sub = os.stat(d / "sub")
    assert sub.st_gid == 1234 and sub.st_mode & stat.S_ISGID


def test_permissions_are_enforced_for_other_users(shared_any_mount: Mounted) -> None:
    mnt = shared_any_mount.path
    (mnt / "private").write_text("secret")
    os.chmod(mnt / "private", 0o600)
    (mnt / "public").write_text("hello")
    out = as_nobody(
        f"m = {str(mnt)!r}\n"
        "print(open(m + '/public').read())\n"
        "for what, call in [('create', lambda: open(m + '/new', 'w')),\n"
        "                   ('read', lambda: open(m + '/private').read()),\n"
        "                   ('chmod', lambda: os.chmod(m + '/public', 0o777)),\n"
        "                   ('unlink', lambda: os.unlink(m + '/public'))]:\n"
        "    try:\n"
        "        call()\n"
        "        print(what, 'allowed')\n"
        "    except OSError as e:\n"
        "        print(what, errno.errorcode[e.errno])\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:5] == [
        "hello", "create EACCES", "read EACCES", "chmod EPERM", "unlink EACCES",
    ]  # fmt: skip
    assert not (mnt / "new").exists()


def test_names_over_255_bytes(shared_any_mount: Mounted) -> None:
    mnt = shared_any_mount.path
    (mnt / ("a" * 255)).write_text("ok")
    for call in (
        lambda: open(mnt / ("b" * 256), "w"),
        lambda: os.mkdir(mnt / ("é" * 128)),  # 256 bytes in UTF-8
        lambda: os.stat(mnt / ("c" * 300)),
    ):
        with pytest.raises(OSError) as caught:
            call()
        assert caught.value.errno == errno.ENAMETOOLONG
    assert os.statvfs(mnt).f_namemax == 255
    pub = str(mnt / "pub")
    assert nobody_says(
        f"attempt('255', lambda: open({pub!r} + '/' + 'n' * 255, 'w').write('ok'))\n"
        f"attempt('256', lambda: open({pub!r} + '/' + 'n' * 256, 'w'))\n"
        f"attempt('mkdir 256', lambda: os.mkdir({pub!r} + '/' + 'd' * 256))\n"
    ) == ["255 allowed", "256 ENAMETOOLONG", "mkdir 256 ENAMETOOLONG"]
    assert os.stat(mnt / "pub" / ("n" * 255)).st_uid == NOBODY


def test_truncate_to_huge_sizes_allocates_nothing(shared_mount: Mounted) -> None:
    path = shared_mount.path / "sparse"
    path.write_bytes(b"head")
    with pytest.raises(OSError) as caught:
        os.truncate(path, 10**15)
    assert caught.value.errno == errno.EFBIG
    pid = shared_mount.pid()
    before = _rss(pid)
    os.truncate(path, 64 * 1024 * 1024)  # sparse in the spool, streamed to the UFS
    assert _rss(pid) - before < 32 * 1024 * 1024
    assert os.stat(path).st_size == 64 * 1024 * 1024
    with open(path, "rb") as f:
        assert f.read(4) == b"head"
        f.seek(64 * 1024 * 1024 - 10)
        assert f.read() == b"\0" * 10


def _rss(pid: int | None) -> int:
    assert pid is not None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_open_file_sees_its_truncate(shared_any_mount: Mounted) -> None:
    path = shared_any_mount.path / "t"
    path.write_bytes(b"x" * 100_000)
    with open(path, "r+b") as f:
        os.ftruncate(f.fileno(), 10)
        assert os.fstat(f.fileno()).st_size == 10
        assert os.stat(path).st_size == 10
    assert path.read_bytes() == b"x" * 10


def _renameat2(src: Path, dst: Path, flags: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    rc = libc.renameat2(at_fdcwd, bytes(src), at_fdcwd, bytes(dst), flags)
    return 0 if rc == 0 else ctypes.get_errno()


def test_renames_and_removals(shared_mount: Mounted) -> None:
    m = shared_mount.path
    (m / "a").write_text("A")
    (m / "b").write_text("B")
    os.rename(m / "a", m / "b")  # over a file: replaced
    assert (m / "b").read_text() == "A" and not (m / "a").exists()
    (m / "d1").mkdir()
    (m / "d1" / "f").write_text("in d1")
    (m / "empty").mkdir()
    os.rename(m / "d1", m / "empty")  # a directory over an empty one
    assert (m / "empty" / "f").read_text() == "in d1"
    (m / "full").mkdir()
    (m / "full" / "g").write_text("g")
    expect = {
        "rename dir over non-empty dir": (lambda: os.rename(m / "empty", m / "full"),
                                          errno.ENOTEMPTY),
        "rename dir over file": (lambda: os.rename(m / "full", m / "b"), errno.ENOTDIR),
        "rename file over dir": (lambda: os.rename(m / "b", m / "full"), errno.EISDIR),
        "rmdir non-empty": (lambda: os.rmdir(m / "full"), errno.ENOTEMPTY),
        "rmdir a file": (lambda: os.rmdir(m / "b"), errno.ENOTDIR),
        "unlink a dir": (lambda: os.unlink(m / "full"), errno.EISDIR),
        "hard link of a dir": (lambda: os.link(m / "full", m / "full2"), errno.EPERM),
        "hard link onto a name": (lambda: os.link(m / "full", m / "b"), errno.EEXIST),
        "mkdir over file": (lambda: os.mkdir(m / "b"), errno.EEXIST),
        "file below a file": (lambda: open(m / "b" / "x", "w"), errno.ENOTDIR),
    }  # fmt: skip
    for what, (call, code) in expect.items():
        with pytest.raises(OSError) as caught:
            call()
        assert caught.value.errno == code, what
    (m / "c").write_text("C")
    assert _renameat2(m / "c", m / "b", 1) == errno.EEXIST  # RENAME_NOREPLACE
    assert (m / "b").read_text() == "A"
    assert _renameat2(m / "c", m / "new", 1) == 0
    assert _renameat2(m / "new", m / "b", 2) == errno.EINVAL  # RENAME_EXCHANGE
    shared_mount.umount()
    ufs = shared_mount.store.root  # type: ignore[attr-defined]
    assert (ufs / "b").read_text() == "A" and (ufs / "new").read_text() == "C"
    assert (ufs / "empty" / "f").read_text() == "in d1" and not (ufs / "d1").exists()


def test_tree_deeper_than_path_max(shared_mount: Mounted) -> None:
    """Walked with directory descriptors, as `find` and `rm -r` do: no path is ever built on
    this side; the daemon and the local connector must not build one either."""
    level = "d" * 50
    fds = [os.open(shared_mount.path, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for _ in range(100):  # 100 x 51 bytes: deeper than PATH_MAX (4096)
            os.mkdir(level, dir_fd=fds[-1])
            fds.append(os.open(level, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fds[-1])
        os.write(leaf, b"at the bottom")
        os.close(leaf)
        leaf = os.open("leaf", os.O_RDONLY, dir_fd=fds[-1])
        assert os.read(leaf, 100) == b"at the bottom"
        os.close(leaf)
        os.rename("leaf", "renamed", src_dir_fd=fds[-1], dst_dir_fd=fds[-1])
        assert os.listdir(fds[-1]) == ["renamed"]
    finally:
        for fd in fds:
            os.close(fd)
    shared_mount.umount()
    ufs = shared_mount.store.root  # type: ignore[attr-defined]
    fd = os.open(ufs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(100):
            inner = os.open(level, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("renamed", os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"at the bottom"  # in the UFS too
    finally:
        os.close(fd)
    shared_mount.mount("allow_other")
    shutil.rmtree(shared_mount.path / level)  # rm -r walks by descriptors as well
    assert os.listdir(shared_mount.path) == []

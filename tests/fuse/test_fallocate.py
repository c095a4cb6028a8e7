"""fallocate through a real mount, over a local UFS and over S3 (moto over HTTP): mode 0 grows
a file past its end (zeros), KEEP_SIZE changes nothing visible, other modes are refused."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess

import pytest

from tests.fuse.mounting import Mounted
from tests.fuse.otheruser import NOBODY, nobody_says
from tests.ufs.stores import Store

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if _libc.fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def test_the_fallocate_tool(any_mount: Mounted) -> None:
    store: Store = any_mount.store  # type: ignore[attr-defined]
    mnt = any_mount.path
    new = mnt / "new"
    subprocess.run(["fallocate", "-l", "1M", str(new)], check=True)
    assert os.stat(new).st_size == 1 << 20
    assert new.read_bytes() == bytes(1 << 20)
    assert store.get("new") == bytes(1 << 20)
    small = mnt / "small"
    small.write_bytes(b"0123456789")
    subprocess.run(["fallocate", "--keep-size", "-l", "1M", str(small)], check=True)
    assert small.read_bytes() == b"0123456789"
    punched = subprocess.run(["fallocate", "--punch-hole", "-o", "0", "-l", "4", str(small)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert punched.returncode != 0 and "supported" in punched.stderr, punched.stderr
    assert small.read_bytes() == b"0123456789"
    any_mount.umount()
    any_mount.mount()
    assert os.stat(new).st_size == 1 << 20
    assert small.read_bytes() == b"0123456789"


def test_fallocate_on_an_open_file(any_mount: Mounted) -> None:
    store: Store = any_mount.store  # type: ignore[attr-defined]
    path = any_mount.path / "open"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x" * 100)
        fallocate(fd, 0, 0, 50)  # inside the file: nothing changes
        assert os.fstat(fd).st_size == 100
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1000)
        assert os.fstat(fd).st_size == 100
        fallocate(fd, 0, 50, 200)  # past the end: grows to 250
        assert os.fstat(fd).st_size == 250
        os.posix_fallocate(fd, 0, 300)
        assert os.fstat(fd).st_size == 300
        with pytest.raises(OSError) as exc:
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 10)
        assert exc.value.errno == errno.EOPNOTSUPP
        os.pwrite(fd, b"end", 297)
        assert os.pread(fd, 400, 0) == b"x" * 100 + bytes(197) + b"end"
    finally:
        os.close(fd)
    assert store.get("open") == b"x" * 100 + bytes(197) + b"end"
    ro = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as exc:
            fallocate(ro, 0, 0, 1000)
        assert exc.value.errno == errno.EBADF
    finally:
        os.close(ro)


def test_fallocate_as_another_user(shared_any_mount: Mounted) -> None:
    """User nobody, through an allow_other mount, preallocates its own file (mode 0 grows it,
    KEEP_SIZE does not) and one of root's it may write; one opened for reading only: EBADF."""
    store: Store = shared_any_mount.store  # type: ignore[attr-defined]
    pub = shared_any_mount.path / "pub"
    for name, mode in (("readable", 0o644), ("writable", 0o666)):
        (pub / name).write_bytes(b"root's")
        os.chmod(pub / name, mode)
    code = (
        f"import ctypes\nd = {str(pub)!r}\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]\n"
        "def falloc(path, flags, mode, length):\n"
        "    fd = os.open(path, flags, 0o600)\n"
        "    try:\n"
        "        if libc.fallocate(fd, mode, 0, length) != 0:\n"
        "            raise OSError(ctypes.get_errno(), 'fallocate')\n"
        "    finally:\n"
        "        os.close(fd)\n"
        "    print(os.stat(path).st_size)\n"
        "falloc(d + '/mine', os.O_RDWR | os.O_CREAT, 0, 5000)\n"
        "falloc(d + '/mine', os.O_RDWR, 1, 9000)\n"
        "falloc(d + '/writable', os.O_WRONLY, 0, 100)\n"
        "attempt('readable', lambda: falloc(d + '/readable', os.O_RDONLY, 0, 100))\n"
        "attempt('open readable', lambda: falloc(d + '/readable', os.O_RDWR, 0, 100))\n"
    )
    assert nobody_says(code) == ["5000", "5000", "100", "readable EBADF", "open readable EACCES"]
    assert store.get("pub/mine") == bytes(5000)
    assert store.get("pub/writable") == b"root's" + bytes(94)
    assert (pub / "readable").read_bytes() == b"root's"
    assert os.stat(pub / "mine").st_uid == NOBODY

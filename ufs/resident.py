"""Reads of a local file that never wait: its bytes if the kernel holds them, else nothing.

A cold read from a local store (a dataset on the local disk, read once by the epoch before or
just written) mostly finds the file in the page cache: the read itself is a copy. Handing it
to a worker thread so that the event loop never blocks costs more than the copy (a thread hop
is ~60 µs of CPU on both sides, and the GIL passed back and forth), so the loop first tries a
read that cannot block, and only a read that would wait goes to a thread:

- ``openat2`` with ``RESOLVE_CACHED`` opens the file only if every name on its path is in the
  kernel's dentry cache (no disk read, no revalidation: ``EAGAIN`` otherwise) and, with
  ``RESOLVE_BENEATH`` and ``RESOLVE_NO_MAGICLINKS``, only if the path stays below the store's
  root (``EXDEV`` for ``..`` or a symlink leading out, or an absolute one: the thread's path,
  which checks the file it opened, then decides);
- ``preadv2`` with ``RWF_NOWAIT`` copies the bytes only if they are all in the page cache
  (``EAGAIN``, or a short read, otherwise).

Only on file systems whose open and stat never go to a network (ext4, XFS, Btrfs, tmpfs, F2FS,
ZFS): on NFS or a FUSE store even a stat may wait for a server. Linux 5.12 or later
(``RESOLVE_CACHED``); older kernels refuse the flag and the read simply goes to a thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading

# Linux's generic system call table (x86-64 and arm64 alike) and include/uapi/linux/openat2.h.
_SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
RESOLVE_CACHED = 0x20

# statfs(2) magic numbers of local file systems (include/uapi/linux/magic.h; ZFS's own).
LOCAL_FS_TYPES = {
    0xEF53: "ext2/3/4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x01021994: "tmpfs",
    0xF2F52010: "f2fs",
    0x2FC12FC1: "zfs",
}


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_statfs = _libc.statfs
_statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
# O_NONBLOCK: a FIFO or device under the name is not waited for (and then not read: not S_IFREG).
_HOW = _OpenHow(
    os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK,
    0,
    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED,
)
_HOW_SIZE = ctypes.c_size_t(ctypes.sizeof(_OpenHow))
_SYSCALL_NO = ctypes.c_long(_SYS_OPENAT2)


def fs_type(path: str) -> int | None:
    """The statfs(2) magic number of the file system holding ``path``; None if unknown."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes; f_type comes first
    if _statfs(os.fsencode(path), buf) != 0:
        return None
    return int.from_bytes(buf.raw[:8], "little", signed=True) & 0xFFFFFFFF


def never_waits(path: str) -> bool:
    """Whether reads below ``path`` may be tried without waiting (a local file system whose open
    and stat do not go to a network)."""
    return fs_type(path) in LOCAL_FS_TYPES


def open_cached(dir_fd: int, rel: str) -> int | None:
    """``rel`` (below the directory ``dir_fd``) opened for reading if the kernel can do it from
    its caches alone and the path stays below the directory; None otherwise, whatever the
    reason (the caller's blocking path finds out which, and says so)."""
    fd = _syscall(
        _SYSCALL_NO, ctypes.c_int(dir_fd), os.fsencode(rel), ctypes.byref(_HOW), _HOW_SIZE
    )
    return None if fd < 0 else int(fd)


def pread_resident(fd: int, offset: int, length: int) -> tuple[bytes, os.stat_result] | None:
    """Up to ``length`` bytes at ``offset`` of the regular file ``fd`` (what it holds there), and
    its status after the read, if every byte is in the page cache; None if any is not, or if
    ``fd`` is not a regular file. Raises OSError with EOPNOTSUPP where the file system cannot
    tell (it never says ``RWF_NOWAIT``)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return None
    want = max(0, min(length, st.st_size - offset))
    buf = bytearray(want)
    if want:
        try:
            got = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        if got != want:  # part of it is not resident (or the file shrank): a thread reads it
            return None
    # One copy (~4 µs for 110 KB): the block goes on as bytes, immutable, to its reader, the
    # flight other readers join and the storer alike.
    return bytes(buf), os.fstat(fd)


def unsupported(exc: OSError) -> bool:
    """Whether ``exc`` says the file system cannot read without waiting at all."""
    return exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


class ResidentReader:
    """Non-waiting reads below one local root, for a connector. The root is opened (and the
    kernel's support for the flags tried) by ``prepare``, which may wait and so is called from a
    connector's blocking read; until then, or where unsupported, ``read`` answers None."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._root_fd: int | None = None  # held until close
        self._enabled = False  # the root is open and the file system reads without waiting
        self._prepared = False
        self._lock = threading.Lock()

    def prepare(self) -> None:
        if self._prepared:
            return
        with self._lock:
            if self._prepared:
                return
            self._prepared = True
            if not never_waits(self.root):
                return
            dir_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            probe = open_cached(dir_fd, ".")  # None: a kernel without openat2's flags
            if probe is None:
                os.close(dir_fd)
                return
            os.close(probe)
            self._root_fd, self._enabled = dir_fd, True

    def read(self, rel: str, offset: int, length: int) -> tuple[bytes, os.stat_result] | None:
        """``length`` bytes at ``offset`` of file ``rel`` (normalized, below the root) and its
        status after the read, if the kernel can give them without waiting; else None."""
        if not self._enabled:
            return None
        with self._lock:  # close must not free the root's descriptor number while in use
            fd = None if self._root_fd is None else open_cached(self._root_fd, rel or ".")
        if fd is None:
            return None
        try:
            return pread_resident(fd, offset, length)
        except OSError as exc:
            if unsupported(exc):
                self._enabled = False  # never again for this root
            return None
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            self._enabled = False
            if self._root_fd is not None:
                os.close(self._root_fd)
                self._root_fd = None

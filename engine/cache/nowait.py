"""Reads of cached block files on the FUSE event loop that never wait for a device.

A disk tier's block file is usually in the kernel's page cache (written or read lately: a tier
pass after a remount reads what the stop moved there), but not after a reboot or when memory ran
short: a plain ``pread`` then waits for the disk, and on the event loop every other request waits
with it. ``preadv2`` with ``RWF_NOWAIT`` copies bytes only if all are resident (``EAGAIN`` or a
short read otherwise): the caller then has a worker thread read them. tmpfs (the MEM tier)
refuses the flag (``EOPNOTSUPP``); its pages are RAM, where a plain ``pread`` does not wait.
"""

from __future__ import annotations

import errno
import os

# Devices whose file system refuses RWF_NOWAIT: read there with a plain pread (tmpfs: RAM).
_REFUSING: set[int] = set()
_CANNOT_TELL = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def pread(fd: int, length: int, offset: int, dev: int, wait: bool) -> bytes | bytearray | None:
    """``length`` bytes at ``offset`` of ``fd`` (a file on device ``dev``; fewer past its end).
    With ``wait`` False: None if any of them is not in the page cache, else all of them in a
    fresh buffer, not copied again into immutable bytes: a FUSE reply takes any buffer."""
    if wait or dev in _REFUSING:
        return os.pread(fd, length, offset)
    buf = bytearray(length)
    try:
        got = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno not in _CANNOT_TELL:
            raise
        _REFUSING.add(dev)
        return os.pread(fd, length, offset)
    # Short: not all resident, or the file shrank (its stamp changed: checked by a thread then).
    return buf if got == length else None

"""A file's pages in the kernel's page cache: dropped, and asked after the way the read path
asks (``preadv2(RWF_NOWAIT)``), for tests of reads that must never wait for a disk."""

from __future__ import annotations

import os
from pathlib import Path


def evict(path: Path) -> None:
    """Drops ``path``'s pages from the page cache (written back first: dirty pages stay)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident(path: Path) -> bool:
    """Whether every page of ``path`` is in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return os.preadv(fd, [bytearray(size)], 0, os.RWF_NOWAIT) == size
    except BlockingIOError:
        return False
    finally:
        os.close(fd)

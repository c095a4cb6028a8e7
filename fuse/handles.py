"""What the frontend keeps per open file and per open directory: the ``fh`` the kernel hands
back with every request on it. One small object per open handle, dropped at its release."""

from __future__ import annotations

import os
from array import array

from fuse.writebuffer import WriteBuffer


class Handle:
    __slots__ = ("ino", "buffer", "read", "direct")

    def __init__(self, ino: int, buffer: WriteBuffer | None, read: bool) -> None:
        self.ino = ino
        self.buffer = buffer
        self.read = read  # read through yet (or as if): the first read may move the atime
        self.direct = False  # its writes bypass the kernel's page cache (direct_io)


class DirHandle:
    __slots__ = ("ino", "names", "ids")

    def __init__(self, ino: int, ids: array[int]) -> None:
        self.ino = ino
        # children when the listing (re)started, after "." and "..": offsets index it
        self.names: list[str] = []
        self.ids = ids


def writes_around_pages(flags: int, open_handles: int, buffer: WriteBuffer) -> bool:
    """Whether a handle opened with ``flags`` to write through ``buffer`` bypasses the kernel's
    page cache (direct_io), ``open_handles`` of its file open besides it: if it is write-only
    and every other open handle does too (none, most often).

    Its WRITEs then come straight from the writer's memory, where through the page cache the
    kernel first copies them into pages of the file it allocates (a second copy, and on the
    test VM as many fresh pages as the file has bytes: a 1 GiB write to S3 spent 1.3-3.0 s
    writing instead of 5.2-5.9, docs/benchmarks.md) and asks for ``security.capability`` before
    each. Other handles go through the page cache as before: a reader opened beside such a
    writer, or a handle that may be mapped (a direct_io file cannot be mapped shared: pyfuse3
    cannot ask for FUSE_DIRECT_IO_ALLOW_MMAP); a direct handle's WRITE drops the pages they may
    read before it is answered (fuse/operations.py ``write``)."""
    return flags & os.O_ACCMODE == os.O_WRONLY and open_handles == buffer.direct_handles

"""A file of the fsspec client opened for reading: bytes by pread of the cached block files
the daemon handed over, through the daemon for blocks it does not cache."""

from __future__ import annotations

import errno
import io
import os
from typing import Any

from cli.client.connection import BATCH, Connection, Opened


def read_range(conn: Connection, opened: Opened, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes from ``offset`` of the content ``opened`` is of."""
    end = min(offset + length, opened.size)
    if offset >= end:
        return b""
    bs = opened.bs
    first, last = offset // bs, (end - 1) // bs
    if first == last:  # a small file, or a read inside one block
        block = opened.blocks.get(first)
        if block is not None:
            data = os.pread(block.fd, end - offset, offset - first * bs)
            if len(data) == end - offset:
                return data
    parts = []
    idx = first
    while idx <= last:
        if idx not in opened.blocks:
            conn.more_blocks(opened, (idx // BATCH) * BATCH)
        block = opened.blocks.get(idx)
        start = idx * bs
        lo, hi = max(offset, start), min(end, start + bs)
        if block is not None:
            data = os.pread(block.fd, hi - lo, lo - start)
            if len(data) == hi - lo:
                parts.append(data)
                idx += 1
                continue
        # Not cached (or shorter than the daemon said: it is read again through it): the
        # daemon reads this block and the misses right after it in one request.
        run_end = idx + 1
        while run_end <= last and run_end in opened.blocks and opened.blocks[run_end] is None:
            run_end += 1
        hi = min(end, run_end * bs)
        parts.append(_through(conn, opened, lo, hi - lo))
        idx = run_end
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _through(conn: Connection, opened: Opened, offset: int, length: int) -> bytes:
    parts = []
    while length > 0:
        data = conn.read_through(opened, offset, length)
        if not data:
            raise OSError(errno.EIO, f"{opened.path}: the daemon returned no bytes at {offset}")
        parts.append(data)
        offset += len(data)
        length -= len(data)
    return b"".join(parts)


class ShoalFile(io.RawIOBase):
    """A read-only file object (``fs.open(path, "rb")``). Its content is the one it was
    opened with; if that changes on the daemon meanwhile, a block not yet in hand is refused
    with ESTALE, and the file is opened again (the rest is read from the new content). If
    the name holds another file by then, ESTALE reaches the reader."""

    def __init__(self, conn: Connection, opened: Opened, name: str) -> None:
        super().__init__()
        self.conn = conn
        self.opened = opened
        self.name = name
        self.mode = "rb"
        self.pos = 0

    @property
    def size(self) -> int:
        return self.opened.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        n = self.opened.size - self.pos if size is None or size < 0 else size
        try:
            data = read_range(self.conn, self.opened, self.pos, n)
        except OSError as exc:
            if exc.errno != errno.ESTALE:
                raise
            again = self.conn.open(self.opened.path)
            if again.ino != self.opened.ino:  # another file took the name: not ours to read
                raise
            self.opened = again
            data = read_range(self.conn, self.opened, self.pos, n)
        self.pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self.pos + offset
        elif whence == io.SEEK_END:
            pos = self.opened.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self.pos = pos
        return pos

    def tell(self) -> int:
        return self.pos

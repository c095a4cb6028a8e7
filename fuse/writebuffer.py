"""The content of a file open for writing: POSIX writes over write-once objects.

Objects in a UFS are written whole, but POSIX programs write at random offsets, append,
overwrite and truncate. A ``WriteBuffer`` holds a file's new content in an anonymous spool file
in the home (O_TMPFILE: a crash leaves nothing behind), or, for a new file the engine spools in
its store (engine/spools.py), in a temporary file there, which the commit lands. It starts
empty and sparse: a block of the old content is copied in only when a write covers it partly or
a reader of the buffer needs it, so a small change to a large file copies one block, not the
file. ``commit`` hands the whole new content to the engine, which makes it durable as the
write type says; until then the old content version stays what every other reader of the engine
sees.

Every handle of the inode that writes shares one buffer, and every read of the inode goes to it
while it exists, so the mount sees its own writes at once (size included).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from engine.spools import StoreSpool

log = logging.getLogger(__name__)

ReadOld = Callable[[int, int], bytes]  # (offset, length) -> bytes of the old content


class WriteBuffer:
    def __init__(
        self,
        spool_dir: str,
        ino: int,
        size: int,
        block_size: int,
        read_old: ReadOld,
        spool: StoreSpool | None = None,
    ) -> None:
        self.ino = ino
        self.block_size = block_size
        self.read_old = read_old
        self.spool_dir = spool_dir
        # A new file the engine spools in its store (engine/spools.py): written there once.
        self.spool = spool
        self.fd = spool.fd if spool is not None else self._home_spool()
        # Once a store spool landed: the store's file, still open, where the old content is
        # read from (its name may be gone: the file unlinked while open, THROUGH's only copy).
        self.landed_fd = -1
        self.size = size
        # Bytes below old_size that are not in a filled block still read as the old content.
        self.old_size = size
        self.filled: set[int] = set()
        self.dirty = False
        self.mtime_ns = 0  # of the last write, shown while the content is not committed
        # A utimens since the last write set ``mtime_ns``: the commit keeps it, not its time.
        self.mtime_set = False
        self.handles = 0  # open handles writing through this buffer
        # Of those, the ones whose writes bypass the kernel's page cache (direct_io)
        self.direct_handles = 0
        self.lock = threading.Lock()  # held while a block is copied in or the spool changes
        if size:
            os.ftruncate(self.fd, size)

    def _home_spool(self) -> int:
        return os.open(self.spool_dir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)

    def committed(self) -> None:
        """After a commit, with the lock held: a spool the store landed is the file's content
        now, no longer a place for further writes; they go to a new spool in the home, over
        the committed content (old content, read block by block from the landed file)."""
        if self.spool is None or not self.spool.landed:
            return
        self.landed_fd, self.fd, self.spool = self.fd, self._home_spool(), None
        if self.size:
            os.ftruncate(self.fd, self.size)
        self.old_size = self.size
        self.filled = set()

    # -- which blocks still hold old content -------------------------------------------------

    def _unfilled(self, offset: int, end: int, whole: bool) -> list[int]:
        """Blocks touched by [offset, end) that still read as old content; with ``whole``
        False only those whose old bytes the range does not cover entirely (a write that
        covers them all replaces the block without reading it)."""
        bs = self.block_size
        if offset >= end or offset >= self.old_size:
            return []
        out = []
        for idx in range(offset // bs, (min(end, self.old_size) - 1) // bs + 1):
            if idx in self.filled:
                continue
            lo, hi = idx * bs, min((idx + 1) * bs, self.old_size)
            if whole or offset > lo or end < hi:
                out.append(idx)
        return out

    def _fill(self, blocks: list[int]) -> None:
        bs = self.block_size
        for idx in blocks:
            lo = idx * bs
            n = min(bs, self.old_size - lo)
            data = os.pread(self.landed_fd, n, lo) if self.landed_fd >= 0 else self.read_old(lo, n)
            os.pwrite(self.fd, data, lo)
            self.filled.add(idx)

    # -- the file operations -----------------------------------------------------------------

    def write(self, offset: int, data: bytes) -> int:
        """May read old content (a UFS call): from a worker thread."""
        with self.lock:
            return self._write(offset, data)

    def try_write(self, offset: int, data: bytes) -> int | None:
        """``write`` if it can be done now without waiting (the lock is free, no old content
        to copy in: a pwrite to the spool's page cache), else None. For the event loop."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if self._unfilled(offset, offset + len(data), whole=False):
                return None
            return self._write(offset, data)
        finally:
            self.lock.release()

    def _write(self, offset: int, data: bytes) -> int:
        self._check_open()
        end = offset + len(data)
        self._fill(self._unfilled(offset, end, whole=False))
        bs = self.block_size
        if offset < self.old_size:  # blocks whose old bytes it replaced or were filled
            for idx in range(offset // bs, (min(end, self.old_size) - 1) // bs + 1):
                self.filled.add(idx)
        written = os.pwrite(self.fd, data, offset)
        if self.spool is not None:  # a store uploading parts as they fill sends what filled
            self.spool.wrote(offset, offset + written)
        self.size = max(self.size, offset + written)
        self.dirty = True
        self.mtime_ns = time.time_ns()
        self.mtime_set = False
        return written

    def read(self, offset: int, length: int) -> bytes:
        """May read old content (a UFS call): from a worker thread."""
        with self.lock:
            return self._read(offset, length)

    def try_read(self, offset: int, length: int) -> bytes | None:
        """``read`` if it can be done now without waiting, else None (see ``try_write``)."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if self._unfilled(offset, min(offset + length, self.size), whole=True):
                return None
            return self._read(offset, length)
        finally:
            self.lock.release()

    def _read(self, offset: int, length: int) -> bytes:
        self._check_open()
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        self._fill(self._unfilled(offset, end, whole=True))
        return os.pread(self.fd, end - offset, offset)

    def _check_open(self) -> None:
        if self.fd < 0:
            raise BufferClosed(f"the write buffer of inode {self.ino} is closed")

    def truncate(self, size: int) -> None:
        with self.lock:
            self._check_open()
            if size < self.old_size:
                # Old bytes past the new end are gone: growing again must read zeros.
                self.old_size = size
                self.filled = {i for i in self.filled if i * self.block_size < size}
            os.ftruncate(self.fd, size)
            if self.spool is not None:
                self.spool.truncated(size)
            self.size = size
            self.dirty = True
            self.mtime_ns = time.time_ns()
            self.mtime_set = False

    def content(self) -> _SpoolReader:
        """The whole new content as a stream (old blocks copied in first). Call with the
        buffer's lock held, so no write lands while the engine reads it."""
        self._check_open()  # closed, it has no content to give: not a read of a dead descriptor
        self._fill(self._unfilled(0, self.size, whole=True))
        self.old_size = self.size
        self.filled = set(range((self.size + self.block_size - 1) // self.block_size))
        return _SpoolReader(self.fd, self.size, self.spool)

    def abandon(self) -> None:
        """The content will not be committed: a store spool's upload is aborted, waited for."""
        with self.lock:
            if self.spool is not None:
                self.spool.abandon()

    def close(self) -> None:
        """Waits for whoever uses the buffer (a reader copying old content in, a commit)."""
        with self.lock:
            if self.spool is not None:  # never landed: its temporary file goes
                self.spool.drop()  # self.fd: closed once the store's part threads are done
                self.spool, self.fd = None, -1
            if self.landed_fd >= 0:
                os.close(self.landed_fd)
                self.landed_fd = -1
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class Closer:
    """Retired buffers closed in a thread of its own, in order: closing a spool waits for a
    reader still copying old content in, and makes the file system free the spool's blocks
    and inode, a tenth of a millisecond or more per small file that the event loop would
    otherwise spend between two requests."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[WriteBuffer | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def close(self, buffer: WriteBuffer) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="buffer-closer", daemon=True)
            self._thread.start()
        self._queue.put(buffer)

    def finish(self) -> None:
        """Returns once every buffer handed over so far is closed (at the daemon's stop)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while (buffer := self._queue.get()) is not None:
            try:
                buffer.close()
            except Exception:  # a descriptor already gone: nothing left to free
                log.exception("closing the write buffer of inode %d failed", buffer.ino)


class BufferClosed(Exception):
    """The buffer was retired (its content committed): read the file from the engine."""


class _SpoolReader:
    """A read-only stream over the first ``size`` bytes of the spool file."""

    def __init__(self, fd: int, size: int, spool: StoreSpool | None) -> None:
        self.fd, self.size, self.pos = fd, size, 0
        self.spool = spool  # the engine lands it instead of reading it, where it can

    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.pos
        if n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.pos)
        self.pos += len(data)
        return data

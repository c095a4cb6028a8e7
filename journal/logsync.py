"""The writer process's log: what is written, what is synced, and the acks that say so.

With a commit interval on a real disk, the log's syncs (and the cache tiers' ``syncfs`` before
each, journal/datasync.py) run in a thread of their own: entries that arrive meanwhile are
written and acknowledged at once instead of waiting behind an fsync (on a disk that the store
and the tiers share, a sync took milliseconds, and a single-threaded `tar x` waited that long
for about one request in three). Acks are sent under one lock, so each carries the latest
written and durable numbers and neither ever moves back.

What each sync covers is taken under that lock before it starts: the records written so far,
and the data marks (CONTROL_DATA) received so far, whose blocks were written before their
marks were sent. A record written while a sync is under way is durable only after the next
one, and is never flagged as a write's start (journal/format.py): the flag promises that every
earlier record is synced with its data, which only a sync that began after it can say.

Without a commit interval (``every_op``: each write O_DSYNC), or with a storage served over a
socket (the crash simulator's, journal/remote_storage.py: one request at a time), the syncs
run inline in the main loop, as before.
"""

from __future__ import annotations

import os
import struct
import threading
import time

from journal.datasync import DataSync
from journal.writer import SegmentWriter

# Written seq, durable seq, commits so far. Written: in the log file (the page cache), what
# journal.durability = "commit_interval" acknowledges; durable: synced. Written -1: failure,
# then a message of `durable` bytes.
ACK = struct.Struct("<qqq")


def failure_ack(message: str) -> bytes:
    text = message.encode("utf-8", "replace")[:3000]  # one atomic pipe write
    return ACK.pack(-1, len(text), 0) + text


class LogSync:
    """The segment written by the main loop and synced inline or by a thread (``threaded``)."""

    def __init__(
        self,
        segment: SegmentWriter,
        data: DataSync,
        ack_fd: int,
        durable: int,
        interval_s: float,
        threaded: bool,
    ) -> None:
        self.segment = segment
        self.data = data
        segment.before_sync = self._data_first
        self.ack_fd = ack_fd
        self.interval_s = interval_s
        self.written = self.durable = durable
        self.commits = 0
        self._cond = threading.Condition()
        self._covered = durable  # the last record a sync under way or done covers
        self._asked = durable  # the parent asked for everything up to here to be synced
        self._since: float | None = None  # when the oldest record no sync covers was written
        self._writes = 0
        self._syncing = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="log-sync", daemon=True)
            self._thread.start()

    # -- the main loop's side ----------------------------------------------------------------

    def deadline(self) -> float | None:
        """When the main loop must sync inline if nothing arrives (None: no need, or the
        thread does it)."""
        if self._thread is not None or self._since is None:
            return None
        return self._since + self.interval_s

    def mark_data(self) -> None:
        """CONTROL_DATA: a block named by a later entry was written unsynced."""
        with self._cond:
            self.data.pending = True

    def write(self, records: list[bytes]) -> None:
        """Appends framed records (one write), the next sequence numbers."""
        with self._cond:
            segment = self.segment
            if segment.handle is None or segment.size >= segment.segment_size:
                self._idle()  # starting a segment closes the handle a sync may be using
            segment.write(b"".join(records), self.written + 1)
            self.written += len(records)
            self.commits += 1
            self._writes += 1
            if self._since is None:
                self._since = time.monotonic()
            self._cond.notify_all()

    def ask(self) -> None:
        """CONTROL_SYNC (or ``every_op``): everything written made durable, then an ack."""
        if self._thread is None:
            self.sync_now()
            return
        with self._cond:
            self._asked = self.written
            self._cond.notify_all()

    def sync_now(self) -> None:
        """Everything written synced in the calling thread, after a sync under way."""
        with self._cond:
            self._idle()
            self.data.sync()  # before the log: a durable entry never names bytes that are not
            self.segment.sync()
            self.durable = self._covered = self.written
            self._since = None

    def rotate(self, path: str, first_seq: int, size: int) -> None:
        """CONTROL_ROTATE: everything synced, then segment ``first_seq`` (made by the parent,
        a header and nothing after it) is appended to."""
        with self._cond:
            self.sync_now()
            self.segment.open_existing(path, first_seq, size, size)

    def ack(self) -> None:
        with self._cond:
            os.write(self.ack_fd, ACK.pack(self.written, self.durable, self.commits))

    def close(self) -> None:
        """At the end of the data pipe: the thread's last sync done, the thread ended."""
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._thread.join()

    def _data_first(self) -> None:
        # The segment's own fsyncs (a full segment's last one, a preallocation's), from
        # ``write`` or ``sync_now`` with the lock held: they make every record written so far
        # durable, so the data marked so far is synced first, as the sync thread does. No sync
        # of the thread under way: its syncfs uses the data's descriptors unlocked.
        self._idle()
        self.data.sync()

    def _idle(self) -> None:
        # With the lock held: no sync under way (it uses the segment's handle unlocked).
        while self._syncing:
            self._cond.wait()

    # -- the sync thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._sync_when_due():
                pass
        except BaseException as exc:  # the parent must stop acknowledging: fatal, as inline
            try:
                with self._cond:
                    os.write(self.ack_fd, failure_ack(str(exc) or repr(exc)))
            finally:
                os._exit(1)

    def _sync_when_due(self) -> bool:
        with self._cond:
            while not self._due():
                if self._stopping:
                    return False
                self._cond.wait(self._wait_s())
            covered, writes, handle = self.written, self._writes, self.segment.handle
            pending, self.data.pending = self.data.pending, False
            self._syncing, self._covered, self._since = True, covered, None
        if pending:
            self.data.sync_files()
        if handle is not None:
            handle.fsync()
        with self._cond:
            self._syncing = False
            self.durable = max(self.durable, covered)
            if self._writes == writes:  # nothing written meanwhile: the next write starts one
                self.segment.unsynced = False
            os.write(self.ack_fd, ACK.pack(self.written, self.durable, self.commits))
            self._cond.notify_all()
        return True

    def _due(self) -> bool:
        if self.written <= self._covered:
            return False
        if self._asked > self._covered or self._stopping:
            return True
        return self._since is not None and time.monotonic() >= self._since + self.interval_s

    def _wait_s(self) -> float | None:
        if self._since is None:
            return None
        return max(0.0, self._since + self.interval_s - time.monotonic())

"""Appending to the log: the open segment, rotation, and group commit.

Callers frame records and ``submit`` them in sequence order; a record is durable (and the
mutation may be acknowledged) once ``wait(seq)`` returns. In group-commit mode one writer thread
drains the queue, writes each batch with one write and one fsync, and wakes every waiter whose
record it covered: concurrent callers share fsyncs. In synchronous mode (used by the crash
simulator, where determinism matters more than throughput) the submitting thread does the same
work inline. Either way a failed write or fsync is fatal: after it nothing is acknowledged and
``on_fatal`` (by default: log and end the process) runs, because after an fsync error the kernel
may have dropped the dirty pages and a retry could "succeed" without the data.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from journal.errors import JournalClosed, JournalFailed
from journal.format import frame, mark_write_start, segment_header
from journal.layout import SEEN_FILE, segment_name
from journal.storage import FileHandle, Storage, create_durably, join, write_durably
from journal.switching import shorten_switch_interval

log = logging.getLogger(__name__)

EXIT_JOURNAL_FAILED = 75


_allocate_lock = threading.Lock


_lowlevel: Any = None


def trio_lowlevel() -> Any:
    """``trio.lowlevel``, imported on first use."""
    # trio is imported on first use (only the daemon's trio tasks need it), and only once: an
    # import statement on every wait costs more than the rest of the wait.
    global _lowlevel
    if _lowlevel is None:
        import trio.lowlevel

        _lowlevel = trio.lowlevel
    return _lowlevel


def cannot_abort(_: Any) -> Any:
    return trio_lowlevel().Abort.FAILED


def exit_process(exc: BaseException) -> None:
    log.critical("journal write failed, stopping so recovery can run at restart: %s", exc)
    logging.shutdown()
    os._exit(EXIT_JOURNAL_FAILED)


class SegmentWriter:
    """The open (last) segment: appends batches, rotates at ``segment_size``.

    With ``preallocate`` > 0 the segment's end is zero-filled (and synced) that many bytes at a
    time ahead of its last record, and batches are written over the zeros. Why: on ext4 an
    O_DSYNC write that grows the file must also commit the file's new size to the file system's
    journal; one that overwrites written blocks syncs only its data. Measured on the test
    machine: 4,200-5,000 such syncs/s against 2,900-3,400 for appends, and 64 trio writers'
    durable appends/s up 8-15% (docs/benchmarks.md). Readers take zeros after the last record
    for the segment's clean end (journal/format.py).
    """

    def __init__(
        self, storage: Storage, root: str, segment_size: int, handle: FileHandle | None,
        first_seq: int, size: int, *, preallocate: int = 0, sync_each: bool = True,
    ) -> None:  # fmt: skip
        self.storage = storage
        # False (journal.durability = "commit_interval"): writes are not synced one by one;
        # ``sync`` makes everything written durable. The writes between two syncs are then one
        # "write" for torn-tail purposes: only the first record after a sync carries
        # FLAG_WRITE_START, because a power loss may keep any subset of their pages.
        self.sync_each = sync_each
        self.unsynced = False
        self.root = root
        self.segment_size = segment_size
        self.handle = handle
        self.first_seq = first_seq
        self.size = size  # where the next record goes: the end of the last one
        self.allocated = size  # the file's size: zeros from self.size on
        self.preallocate = preallocate
        # Runs before each fsync of the log this writer makes (a full segment's last sync, a
        # preallocation's): that fsync makes every record written so far durable, so the data
        # they name must be first (the writer process's tiers: journal/logsync.py).
        self.before_sync: Callable[[], None] | None = None

    def open_existing(self, path: str, first_seq: int, size: int, allocated: int) -> None:
        """Continues segment ``path`` after its last record, which ends at ``size``."""
        self.close()
        handle = self.storage.open_update(path, sync_writes=self.sync_each)
        self.adopt(handle, first_seq, size, allocated)

    def adopt(self, handle: FileHandle, first_seq: int, size: int, allocated: int) -> None:
        """Continues the segment open as ``handle`` (opened as ``open_existing`` opens it)."""
        self.handle = handle
        self.first_seq, self.size, self.allocated = first_seq, size, max(allocated, size)

    def start_segment(self, first_seq: int) -> None:
        """Creates ``log-<first_seq>.seg`` durably and records it in ``seen`` (to detect a lost
        newest segment)."""
        if self.handle is not None:
            # A power loss must not keep the new segment and lose the old one's tail: a gap.
            self.sync()
            self.handle.close()
            self.handle = None
        path = join(self.root, segment_name(first_seq))
        header = segment_header(first_seq)
        self.handle = create_durably(self.storage, path, header)
        if not self.sync_each:
            self.handle.close()
            self.handle = self.storage.open_update(path, sync_writes=False)
        self.first_seq = first_seq
        self.size = self.allocated = len(header)
        write_durably(self.storage, join(self.root, SEEN_FILE), f"{first_seq}\n".encode())

    def write(self, data: bytes, first_seq: int) -> None:
        """Appends records first_seq.. (durably with ``sync_each``, else until ``sync``); a new
        segment starts once this one is full."""
        if self.handle is None or self.size >= self.segment_size:
            self.start_segment(first_seq)
        assert self.handle is not None
        end = self.size + len(data)
        if end > self.allocated and self.preallocate:
            self._zero_fill(end)
        if not self.unsynced:
            # Its pages may reach the disk in any order: the mark lets a reader tell this
            # write's torn remains from damage before a later write (journal/format.py).
            data = mark_write_start(data)
        self.handle.write_at(data, self.size)
        if self.sync_each:
            self.handle.fsync()
        else:
            self.unsynced = True
        self.size = end
        self.allocated = max(self.allocated, end)

    def _zero_fill(self, end: int) -> None:
        # Zeros up to the next multiple of `preallocate` past `end`, never past the segment's
        # size: the batch that ends a segment just grows the file.
        assert self.handle is not None
        step = self.preallocate
        fill_to = min((end + step - 1) // step * step, self.segment_size)
        if fill_to > end:
            self._data_first()  # outside the try: a failed data sync is fatal, not ENOSPC's
            try:
                self.handle.write_at(bytes(fill_to - self.allocated), self.allocated)
                self.handle.fsync()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                # The fill is only a speed-up: with the disk nearly full, records are appended
                # (zeros that did get written are a clean end all the same).
                log.warning("journal: no room to preallocate %s ahead (%s)", self.root, exc)
                return
            self.allocated = fill_to
            self.unsynced = False  # that fsync covered the records written before the zeros

    def sync(self) -> None:
        """Makes every record written so far durable (nothing to do with ``sync_each``)."""
        if self.unsynced and self.handle is not None:
            self._data_first()
            self.handle.fsync()
        self.unsynced = False

    def _data_first(self) -> None:
        # Before an fsync of the log that covers records written unsynced.
        if self.before_sync is not None and self.unsynced:
            self.before_sync()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def release_gates(waiters: list[tuple[int, Any]], upto: int) -> list[tuple[int, Any]]:
    """Releases the gates of the threads waiting for entries up to ``upto``; the others."""
    keep = []
    for seq, gate in waiters:
        if seq <= upto:
            gate.release()
        else:
            keep.append((seq, gate))
    return keep


def wake_tasks(waiters: list[tuple[int, Any]], upto: int) -> list[tuple[int, Any]]:
    """On the trio thread: reschedules the tasks waiting for entries up to ``upto``."""
    keep: list[tuple[int, Any]] = []
    reschedule = trio_lowlevel().reschedule
    for seq, task in waiters:
        if seq <= upto:
            reschedule(task)
        else:
            keep.append((seq, task))
    return keep


class Waiters:
    """What both group-commit writers share: the callers waiting for durability (threads on a
    private lock each, trio tasks parked on the event loop), and how a failure reaches them."""

    durable_seq: int
    failed: BaseException | None
    on_fatal: Callable[[BaseException], None]
    _waiters: list[tuple[int, Any]]
    _async_waiters: list[tuple[int, Any]]

    def _raise_unless_durable(self, seq: int) -> None:
        if self.durable_seq < seq:
            raise JournalFailed(f"entry {seq} was not made durable: {self.failed}")

    async def _park_until_durable(self, seq: int) -> None:
        # Parks the current trio task, already in _async_waiters, until it is rescheduled;
        # raises if the journal failed before seq was durable.
        await trio_lowlevel().wait_task_rescheduled(cannot_abort)
        self._raise_unless_durable(seq)

    def _covered(self) -> int:
        # Every waiter is "covered" once the journal failed: it wakes to raise.
        return self.durable_seq if self.failed is None else 1 << 62

    def _release_gates(self) -> None:
        # With the lock held: wakes the threads whose entries are durable.
        self._waiters = release_gates(self._waiters, self._covered())

    def _wake_async(self) -> None:
        # On the trio thread: wakes the tasks whose entries are durable.
        self._async_waiters = wake_tasks(self._async_waiters, self._covered())

    def _release_waiters(self) -> None:
        raise NotImplementedError

    def _fail(self, exc: BaseException) -> None:
        # With the lock held. on_fatal runs before any waiter is released: by default it ends
        # the process, and no caller may see its mutation fail (or succeed) first.
        if self.failed is not None:
            return
        self.failed = exc
        try:
            self.on_fatal(exc)
        finally:
            self._release_waiters()


class GroupCommit(Waiters):
    """Orders framed records, writes them in batches and tells waiters when they are durable."""

    _held: list[bytes] | None = None  # appends gathered by ``hold``, handed over together

    def __init__(
        self,
        segment: SegmentWriter,
        next_seq: int,
        *,
        threaded: bool = True,
        flush_window_s: float = 0.0,
        on_fatal: Callable[[BaseException], None] = exit_process,
    ) -> None:
        self.segment = segment
        self.next_seq = next_seq  # assigned to the next submitted record
        self.durable_seq = next_seq - 1
        self.flush_window_s = flush_window_s
        self.on_fatal = on_fatal
        self.fsyncs = 0
        self.failed: BaseException | None = None
        self.closed = False
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        # Wakes the idle writer: a lock used as a binary semaphore, released by the append that
        # finds the writer idle. Cheaper on the append path than Condition.notify.
        self._kick = _allocate_lock()
        self._kick.acquire()
        self._idle = False
        self._waiters: list[tuple[int, Any]] = []
        # Waiters from trio tasks (the FUSE daemon's concurrency): touched only on the trio
        # thread; the writer thread schedules _wake_async there after every batch.
        self._async_waiters: list[tuple[int, Any]] = []
        self._trio_token: Any = None
        self._thread: threading.Thread | None = None
        if threaded:
            # After each write the writer thread waits for the GIL; a CPU-bound event loop
            # holds it for up to a switch interval (5 ms by default), which would add that to
            # every commit. Half a millisecond keeps commits prompt at little cost.
            shorten_switch_interval()
            self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
            self._thread.start()

    def reserve(self, code: int, payload: bytes) -> int:
        """Assigns the next sequence number, queues the framed record and returns the number.

        Sequence order equals queue order because both happen under one lock.
        """
        with self._lock:
            if self.failed is not None:
                raise JournalFailed(f"the journal failed earlier: {self.failed}")
            if self.closed:
                raise JournalClosed("the journal is closed")
            seq = self.next_seq
            self.next_seq = seq + 1
            if self._held is not None:
                self._held.append(frame(seq, code, payload))
            else:
                self._pending.append(frame(seq, code, payload))
                self._wake_writer()
            return seq

    def _wake_writer(self) -> None:
        # With the lock held.
        if self._idle:
            self._idle = False
            self._kick.release()

    def hold(self) -> bool:
        """Gathers the appends from now on until ``release``, which hands them to the writer
        thread together: one batch (one write, one fsync), not as many as the thread happened
        to wake for, so a caller appending alone writes the same log in every run. False
        (nothing to release) if already holding, or without a writer thread (synchronous mode
        writes what is pending at the wait anyway)."""
        with self._lock:
            if self._held is not None or self._thread is None:
                return False
            self._held = []
            return True

    def release(self) -> None:
        with self._lock:
            self._hand_over_held()
            self._held = None

    def _hand_over_held(self) -> None:
        # With the lock held: the gathered appends go to the writer (waited for, or released).
        if self._held:
            self._pending.extend(self._held)
            self._held.clear()
            self._wake_writer()

    def _durable_without_waiting(self, seq: int) -> bool:
        # Already durable, or made so inline here in synchronous mode (no writer thread).
        if self.durable_seq >= seq:
            return True
        if self._thread is None:
            self.flush()
            return True
        return False

    def wait(self, seq: int) -> None:
        """Returns once record ``seq`` is durable; raises JournalFailed if it never will be."""
        if self._durable_without_waiting(seq):
            return
        # A private lock per waiter, released by the writer: a woken thread needs no shared
        # lock, so 64 waiters do not convoy on one mutex after every fsync.
        gate = _allocate_lock()
        gate.acquire()
        with self._lock:
            self._hand_over_held()  # gathered appends that are waited for go now
            if self.durable_seq < seq and self.failed is None:
                self._waiters.append((seq, gate))
            else:
                gate.release()
        gate.acquire()
        self._raise_unless_durable(seq)

    async def wait_async(self, seq: int) -> None:
        """``wait`` for trio tasks: many tasks share one fsync without a thread per waiter."""
        if self._durable_without_waiting(seq):
            return
        if self._held:
            with self._lock:
                self._hand_over_held()
        lowlevel = trio_lowlevel()
        # Always the current run's token: a journal can outlive one trio.run.
        self._trio_token = lowlevel.current_trio_token()
        self._async_waiters.append((seq, lowlevel.current_task()))
        # The batch covering seq may have finished before the token was visible to the writer.
        if self.durable_seq >= seq or self.failed is not None:
            self._wake_async()
        await self._park_until_durable(seq)

    def _release_waiters(self) -> None:
        # Called with the lock held, after durable_seq moved (or the journal failed).
        self._release_gates()
        token = self._trio_token
        if token is not None:
            try:
                token.run_sync_soon(self._wake_async)
            except RuntimeError:  # that trio run has ended; its tasks are gone
                self._trio_token = None

    def rotate(self, first_seq: int) -> None:
        """Starts segment ``first_seq`` (a checkpoint covers everything before it). Everything
        appended must be durable already."""
        segment = self.segment
        if segment.handle is not None and segment.first_seq >= first_seq:
            return
        try:
            segment.start_segment(first_seq)
        except OSError as exc:
            with self._lock:  # _fail notifies waiters: it needs the lock held
                self._fail(exc)
            raise

    def sync(self, seq: int) -> None:
        """``wait``: this writer acknowledges only durable entries, whatever the durability."""
        self.wait(seq)

    # Told to the writer process's commit; this one syncs each batch as written: no-ops.
    def ask_sync(self, seq: int) -> None:
        return None

    def data_written(self) -> None:  # never asked: ``orders_data`` needs the writer process
        return None

    def catch_up(self) -> None:
        return None

    def flush(self) -> None:
        """Makes everything submitted so far durable (synchronous mode, or before a checkpoint)."""
        if self._thread is not None:
            self.wait(self.next_seq - 1)
            return
        with self._lock:
            self._write_pending()

    def _write_pending(self) -> None:
        # Called with the lock held (synchronous mode).
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        first = self.durable_seq + 1
        last = first + len(batch) - 1
        try:
            self.segment.write(b"".join(batch), first)
        except BaseException as exc:
            self._fail(exc)
            raise JournalFailed(f"journal write failed: {exc}") from exc
        self.fsyncs += 1
        self.durable_seq = last

    def _run(self) -> None:
        lock = self._lock
        while True:
            with lock:
                idle = not self._pending
                if idle:
                    if self.closed:
                        return
                    self._idle = True
            if idle:
                # Exactly one release answers each idle period (the append or close that
                # clears _idle), so this acquire and that release always pair up.
                self._kick.acquire()
                continue
            with lock:
                if self.flush_window_s > 0:
                    # Let more writers join this batch; bounded so latency stays predictable.
                    lock.release()
                    time.sleep(self.flush_window_s)
                    lock.acquire()
                batch, self._pending = self._pending, []
                first = self.durable_seq + 1
            last = first + len(batch) - 1
            try:
                self.segment.write(b"".join(batch), first)
            except BaseException as exc:
                with lock:
                    self._fail(exc)
                return
            with lock:
                self.fsyncs += 1
                self.durable_seq = last
                self._release_waiters()

    def close(self) -> None:
        """Writes what is queued, then stops the writer."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._hand_over_held()
            self._wake_writer()
        if self._thread is not None:
            self._thread.join()
        else:
            with self._lock:
                if self.failed is None:
                    self._write_pending()
        self.segment.close()

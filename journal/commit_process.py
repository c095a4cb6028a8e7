"""Group commit with the log writes done by a child process (journal/writer_child.py).

Why a process: with a writer *thread*, every commit ends with that thread waiting for the GIL
while the event loop runs the requests the previous commit woke. Measured on the 2-core test
machine: an O_DSYNC write that takes 0.25 ms took 0.6 ms to return to Python, and 64 trio
writers peaked near 50,000 appends/s. A child has its own interpreter: it writes and syncs while
this process runs, and this process learns of each commit from a pipe that the event loop polls
like any socket, so the waiters are woken without a hand-off between threads.

Protocol. Data pipe (here -> child): each entry's type and msgpack payload, in sequence order,
written as it is appended (non-blocking; what does not fit waits in a backlog that is flushed as
acks arrive); the child numbers and frames them (the checksum is computed off the event loop's
core). A ``CONTROL_ROTATE`` message names a segment this process has created for a checkpoint.
Ack pipe (child -> here): 16 bytes (durable seq, commits
so far) after each batch; seq -1 is a failure followed by its message, after which the child
exits. Closing the data pipe (or dying) makes the child write what it has and exit.

Acks are read by a system task of the current trio run, which wakes the waiting tasks directly.
Waiting threads (CLI commands, tests, admin work in worker threads) take turns instead, never
relying on the event loop (it may be blocked on a lock such a thread holds): the first finds no
reading thread and polls the pipe, the others park until a reader releases them or the reading
thread, once its own entry is durable, hands the role on.

The journal directory stays flock-ed while the child runs, even after this process is killed,
so a restarted process never reads the log while an orphaned writer is still appending to it.

Storage that is not real files (the crash simulator's ``SimStorage``) is served to the child by
a thread of this process (journal/remote_storage.py): the child's every storage operation is
done here, in the order it makes them. There is no lock then (``lock_fd`` None): such storage
lives in this process's memory, so a child can change it only while this process serves it,
never after this process is gone; and there is no directory to flock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import struct
import subprocess
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from journal.child import child_argv
from journal.errors import JournalClosed, JournalFailed
from journal.remote_storage import StorageServer
from journal.storage import FileHandle, OsFile, OsStorage, Storage
from journal.writer import (
    SegmentWriter,
    Waiters,
    cannot_abort,
    exit_process,
    release_gates,
    trio_lowlevel,
    wake_tasks,
)
from journal.writer_child import ACK, CONTROL_DATA, CONTROL_ROTATE, CONTROL_SYNC, MESSAGE_HEADER

_pack_message = MESSAGE_HEADER.pack
_pack_seq = struct.Struct("<Q").pack

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20
THREAD_POLL_MS = 50


class ChildFailed(OSError):
    """The writer process reported a failed write, or ended without being asked to."""


class ProcessCommit(Waiters):
    """Same interface as journal.writer.GroupCommit; the writes happen in a child process."""

    _held: list[bytes] | None = None  # appends gathered by ``hold``, sent in one write

    def __init__(
        self,
        segment: SegmentWriter,
        next_seq: int,
        lock_fd: int | None,
        *,
        flush_window_s: float = 0.0,
        interval_s: float = 0.0,
        on_fatal: Callable[[BaseException], None] = exit_process,
        data: str = "[]",
    ) -> None:
        """``data``: journal/datasync.py's ``encode``, what the child syncs before the log."""
        handle = segment.handle
        where, served = _child_storage(segment.storage, handle)
        self.next_seq = next_seq
        self.durable_seq = next_seq - 1
        # With a commit interval (journal.durability = "commit_interval") an entry is
        # acknowledged once the child has written it to the log file, and durable (synced)
        # within interval_s or when ``sync`` asks; without one, written is durable.
        self.interval_s = interval_s
        self.written_seq = next_seq - 1
        self._sync_asked = next_seq - 1  # the last entry a CONTROL_SYNC was sent after
        self._written_waiters: list[tuple[int, Any]] = []  # threads waiting for "written"
        self._written_async: list[tuple[int, Any]] = []  # trio tasks waiting for "written"
        self.on_fatal = on_fatal
        self.fsyncs = 0
        self.failed: BaseException | None = None
        self.closed = False
        self._segment = segment  # this side only creates segments for checkpoints
        # The segment open at start-up may be one a checkpoint's rotation left empty (a clean
        # stop): rotating to it again would truncate and rewrite a segment `seen` names.
        self._rotated_at = segment.first_seq if handle is not None else 0
        self._lock = threading.Lock()
        self._backlog: list[bytes] = []
        self._acks = b""
        self._reader = False  # a thread is draining the ack pipe (a trio run may be too)
        self._nudge_r, self._nudge_w = _nonblocking_pipe()  # wakes it: ``_release_waiters``
        self._waiters: list[tuple[int, Any]] = []  # threads: (seq, gate)
        self._async_waiters: list[tuple[int, Any]] = []  # trio tasks: (seq, task)
        self._trio_token: Any = None
        self._trio_thread = 0
        data_r, self._data_fd = os.pipe()
        self._ack_fd, ack_w = os.pipe()
        try:
            fcntl.fcntl(self._data_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # above /proc/sys/fs/pipe-max-size: the default size still works
            pass
        # The open segment is handed to the child, not reopened there by name (writer_child).
        handed = ""
        passed = [data_r, ack_w]
        if served is not None:
            passed.append(served.child_fd)
            handed = "0" if handle is not None else ""
        elif handle is not None:
            assert isinstance(handle, OsFile)
            passed.append(handle.fd)
            handed = str(handle.fd)
        if lock_fd is not None:
            passed.append(lock_fd)
        args = child_argv(
            "journal.writer_child", where, segment.root,
            str(segment.segment_size), str(segment.first_seq), str(segment.size),
            str(segment.allocated), str(segment.preallocate),
            handed, str(self.durable_seq), str(data_r), str(ack_w), repr(flush_window_s),
            repr(interval_s), data,
        )  # fmt: skip
        try:
            self._child = subprocess.Popen(args, pass_fds=passed, stdin=subprocess.DEVNULL)
        finally:
            os.close(data_r)
            os.close(ack_w)
            if served is not None:
                os.close(served.child_fd)
                segment.handle = None  # the server owns it now
            else:
                segment.close()  # the child has its own copy of the descriptor
        self._lock_fd = lock_fd
        self._served = served
        os.set_blocking(self._data_fd, False)
        os.set_blocking(self._ack_fd, False)

    # -- appending ---------------------------------------------------------------------------

    def reserve(self, code: int, payload: bytes) -> int:
        with self._lock:
            if self.failed is not None or self.closed:
                self._refuse()
            seq = self.next_seq
            self.next_seq = seq + 1
            data = _pack_message(len(payload), code) + payload
            if self._held is not None and not self._backlog:
                self._held.append(data)
            else:
                self._send(data)
            return seq

    def hold(self) -> bool:
        """Gathers the appends from now on until ``release``, which sends them in one write:
        a batch of entries costs the pipe, and the child's wake-up, once. Nothing may wait for
        a gathered entry before ``release``. False (nothing to release) if already holding."""
        with self._lock:
            if self._held is not None:
                return False
            self._held = []
            return True

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, None
            if held and self.failed is None:
                self._send(b"".join(held))

    def _refuse(self) -> NoReturn:
        if self.failed is not None:
            raise JournalFailed(f"the journal failed earlier: {self.failed}")
        raise JournalClosed("the journal is closed")

    def _send(self, data: bytes) -> None:
        # With the lock held. Never blocks: a full pipe leaves the rest in the backlog, which
        # the ack reader sends once the child has drained some.
        if self._held:  # a control message: the appends gathered before it go first
            data = b"".join([*self._held, data])  # (the backlog is empty while they gather)
            self._held.clear()
        if self._backlog:
            self._backlog.append(data)
            return
        try:
            n = os.write(self._data_fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:  # EPIPE: the child is gone
            self._fail(ChildFailed(exc.errno, f"journal writer process is gone: {exc}"))
            raise JournalFailed(f"journal write failed: {self.failed}") from exc
        if n < len(data):
            self._backlog.append(data[n:])

    def _send_backlog(self) -> None:
        backlog, self._backlog = self._backlog, []
        for i, data in enumerate(backlog):
            self._send(data)
            if self._backlog:
                self._backlog.extend(backlog[i + 1 :])
                return

    def rotate(self, first_seq: int) -> None:
        """Starts segment ``first_seq`` (a checkpoint covers everything before it). Everything
        appended must be durable already."""
        if self._rotated_at == first_seq:
            return
        try:
            self._segment.start_segment(first_seq)
            self._segment.close()
        except OSError as exc:
            with self._lock:
                self._fail(exc)
            raise
        with self._lock:
            self._send(_pack_message(8, CONTROL_ROTATE) + _pack_seq(first_seq))
        self._rotated_at = first_seq

    # -- acks --------------------------------------------------------------------------------

    def catch_up(self) -> None:
        """Reads the acks already there: with a commit interval, the child's own timed sync is
        acknowledged when nobody waits, and durable_seq would lag it until the next append."""
        with self._lock:
            self._consume_acks()

    def _consume_acks(self) -> None:
        """With the lock held: reads the acks that are there, moves durable_seq, wakes."""
        try:
            data = os.read(self._ack_fd, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            if self.durable_seq < self.next_seq - 1 or not self.closed:
                status = self._child.wait()
                self._fail(ChildFailed(f"journal writer process ended (status {status})"))
            self._release_waiters()
            return
        acks = self._acks + data
        usable = len(acks) - len(acks) % ACK.size
        for off in range(0, usable, ACK.size):
            seq, durable, commits = ACK.unpack_from(acks, off)
            if seq == -1:
                message = acks[off + ACK.size : off + ACK.size + durable].decode(errors="replace")
                self._fail(ChildFailed(message))
                return
            self.written_seq, self.durable_seq, self.fsyncs = seq, durable, commits
        self._acks = acks[usable:]
        if self._backlog:
            self._send_backlog()
        self._release_waiters()

    def _release_waiters(self) -> None:
        # With the lock held, after durable_seq moved (or the journal failed).
        if self._waiters or self._written_waiters:
            self._release_gates()
        # The trio run's reader took acks a reading thread polls for: that thread is woken,
        # else it would sleep out its poll (THREAD_POLL_MS) with its entry long written.
        if self._reader and threading.get_ident() == self._trio_thread:
            try:
                os.write(self._nudge_w, b"\0")
            except BlockingIOError:  # nudged already
                pass
        if self._async_waiters or self._written_async:
            if threading.get_ident() == self._trio_thread:
                self._wake_async()
            elif self._trio_token is not None:
                try:
                    self._trio_token.run_sync_soon(self._wake_async_locked)
                except RuntimeError:  # that trio run has ended; its tasks are gone
                    self._trio_token = None

    def _written_covered(self) -> int:
        return self.written_seq if self.failed is None else 1 << 62

    def _release_gates(self) -> None:
        super()._release_gates()
        if self._written_waiters:
            self._written_waiters = release_gates(self._written_waiters, self._written_covered())

    def _wake_async(self) -> None:
        super()._wake_async()
        if self._written_async:
            self._written_async = wake_tasks(self._written_async, self._written_covered())

    def _wake_async_locked(self) -> None:
        with self._lock:
            self._wake_async()

    def _hand_over(self) -> None:
        """With the lock held, as a reading thread leaves: another thread still waiting leads
        next."""
        self._reader = False
        if self._waiters:
            self._waiters.pop(0)[1].release()
        elif self._written_waiters:
            self._written_waiters.pop(0)[1].release()

    # -- waiting -----------------------------------------------------------------------------

    def _reached(self, durable: bool) -> int:
        return self.durable_seq if durable else self.written_seq

    def wait(self, seq: int) -> None:
        """Returns once record ``seq`` may be acknowledged: durable, or with a commit interval
        written to the log file; raises JournalFailed if it never will be."""
        self._wait(seq, self.interval_s <= 0)

    def data_written(self) -> None:
        """Data an entry appended next names was written unsynced: the child syncs the data
        file systems before its next sync of the log (journal/datasync.py)."""
        with self._lock:
            if self.failed is None and not self.closed:
                mark = _pack_message(0, CONTROL_DATA)
                if self._held is not None and not self._backlog:
                    # Gathered like an entry: it goes before the entry naming the block, in
                    # the same write (the child notes a mark before writing the records of
                    # its batch, so every sync of that entry covers the mark).
                    self._held.append(mark)
                else:
                    self._send(mark)

    def sync(self, seq: int) -> None:
        """Returns once record ``seq`` is durable (asking the child to sync now)."""
        if self.durable_seq >= seq:
            return
        self.ask_sync(seq)
        self._wait(seq, True)

    def ask_sync(self, seq: int) -> None:
        """Asks the child to sync record ``seq`` now, not waiting: in a hold, the request
        joins the gathered appends' one write, and a ``sync`` after the hold only waits."""
        if self.interval_s <= 0 or self.durable_seq >= seq:
            return  # every_op: each batch is synced as it is written
        with self._lock:
            if self._sync_asked < seq and self.failed is None:
                self._sync_asked = self.next_seq - 1
                self._send(_pack_message(0, CONTROL_SYNC))

    def _wait(self, seq: int, durable: bool) -> None:
        while self._reached(durable) < seq:
            with self._lock:
                if self._reached(durable) >= seq:
                    break
                if self.failed is not None:
                    raise JournalFailed(f"entry {seq} was not made durable: {self.failed}")
                if self._held:  # gathered entries are waited for: they go now, not at release
                    self._send(b"")
                # Park while another thread reads. Never rely on a trio run's reader: the
                # event loop may be blocked on something this thread holds.
                lead = not self._reader
                if lead:
                    self._reader = True
                else:
                    gate = threading.Lock()
                    gate.acquire()
                    parked = self._waiters if durable else self._written_waiters
                    parked.append((seq, gate))
            if not lead:
                gate.acquire()
                continue
            try:
                poller = select.poll()
                poller.register(self._ack_fd, select.POLLIN)
                poller.register(self._nudge_r, select.POLLIN)
                while self._reached(durable) < seq and self.failed is None:
                    # Bounded: a trio reader started meanwhile may take the ack meant for us
                    # (it nudges us then).
                    poller.poll(THREAD_POLL_MS)
                    with self._lock:
                        self._drain_nudges()
                        self._consume_acks()
            finally:
                with self._lock:
                    self._hand_over()
        if self._reached(durable) < seq:
            raise JournalFailed(f"entry {seq} was not made durable: {self.failed}")

    def _drain_nudges(self) -> None:
        try:
            os.read(self._nudge_r, 64)
        except BlockingIOError:
            pass

    async def wait_async(self, seq: int) -> None:
        """``wait`` for trio tasks. Each trio run gets one system task that reads the acks and
        wakes the tasks whose entries they cover: no hand-off between threads on the way."""
        durable = self.interval_s <= 0
        if self._reached(durable) >= seq:
            return
        lowlevel = trio_lowlevel()
        if lowlevel.current_trio_token() is not self._trio_token:
            self._start_trio_reader(lowlevel)
        if self.failed is not None:
            raise JournalFailed(f"entry {seq} was not made durable: {self.failed}")
        # No lock: the waiter lists are only touched on the trio thread, and a thread that
        # moves durable_seq (or fails) meanwhile wakes the waiters through run_sync_soon, later.
        parked = self._async_waiters if durable else self._written_async
        parked.append((seq, lowlevel.current_task()))
        await lowlevel.wait_task_rescheduled(cannot_abort)
        if self._reached(durable) < seq:
            raise JournalFailed(f"entry {seq} was not made durable: {self.failed}")

    def _start_trio_reader(self, lowlevel: Any) -> None:
        with self._lock:
            self._trio_token = lowlevel.current_trio_token()
            self._trio_thread = threading.get_ident()
        lowlevel.spawn_system_task(self._read_acks_in_trio, lowlevel, name="journal-acks")

    async def _read_acks_in_trio(self, lowlevel: Any) -> None:
        # Lives as long as its trio run: system tasks are cancelled when the run ends.
        wait_readable, lock = lowlevel.wait_readable, self._lock
        token = self._trio_token
        try:
            while self.failed is None:
                await wait_readable(self._ack_fd)
                with lock:
                    self._consume_acks()
        finally:
            with lock:
                if self._trio_token is token:
                    self._trio_token = None
                    self._trio_thread = 0

    def flush(self) -> None:
        """Makes everything submitted so far durable."""
        self.sync(self.next_seq - 1)

    # -- failure and shutdown ----------------------------------------------------------------

    def close(self) -> None:
        """Writes what is queued, stops the child and releases the journal directory."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        try:
            if self.failed is None:
                # Before closing the pipe: reading acks is what lets a backlog drain.
                self.sync(self.next_seq - 1)
        finally:
            os.close(self._data_fd)  # the child exits
            self._child.wait()
            os.close(self._ack_fd)
            os.close(self._nudge_r)
            os.close(self._nudge_w)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
            if self._served is not None:
                self._served.close()


def _nonblocking_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def _child_storage(storage: Storage, handle: FileHandle | None) -> tuple[str, StorageServer | None]:
    """How the child reaches ``storage``: real files by their root, any other storage through a
    server thread here (journal/remote_storage.py), which holds the open segment as handle 0."""
    if isinstance(storage, OsStorage):
        return storage.root, None
    served = StorageServer(storage, handle)
    return served.address, served


_trio_module: Any = None


def _trio() -> Any:
    global _trio_module
    if _trio_module is None:
        import trio

        _trio_module = trio
    return _trio_module

"""The journal: open = newest verifying checkpoint + replay of the log after it; then append.

The journal knows nothing of what entries mean. The caller supplies how to build an empty state,
how to load one from a checkpoint database, how to fill a checkpoint database from one, and how
to apply an entry; ``engine.engine`` wires in the real ones.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import apsw

from journal import entries
from journal.checkpoint import CheckpointInvalid, open_checkpoint, write_checkpoint
from journal.commit_process import ProcessCommit
from journal.datacut import DataCheck, unsound_tail
from journal.datasync import encode
from journal.dirlock import lock_journal_dir
from journal.errors import JournalClosed, JournalCorrupt, JournalError, JournalNotWritable
from journal.layout import CHECKPOINT_DIR, CheckpointFile, Listing, list_journal
from journal.reader import ReadResult, TornTail, read_log
from journal.remote_storage import is_servable
from journal.storage import OsStorage, Storage, join, unlink_durably
from journal.tail import truncate_torn_tail
from journal.writer import GroupCommit, SegmentWriter, exit_process

log = logging.getLogger(__name__)


def _not_open(code: int, payload: bytes) -> int:
    raise JournalClosed("the journal is not open")


# Above this many new GC-tracked objects, a state build is frozen out of the GC's sight.
FREEZE_ABOVE = 100_000


def _build_in_bulk(fn: Callable[[], T]) -> T:
    """Runs ``fn``, which builds the state (objects that live as long as the process), with the
    cyclic GC off; after a large build, moves everything out of the GC's sight.

    With the GC on, a million-inode build triggers collections that rescan the growing heap;
    re-enabled afterwards, the next collection would still traverse every new object once (a
    quarter of a million-inode start-up). State objects form no reference cycles, so frozen ones
    are still freed by reference counting when dropped. Small builds (tests open thousands of
    small homes) skip the freeze: their one extra collection is cheap.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if gc.get_count()[0] > FREEZE_ABOVE:
            gc.freeze()
        if enabled:
            gc.enable()


class Replayable(Protocol):
    last_seq: int

    def apply(self, entry: Any, seq: int) -> None: ...

    def replay_appliers(self) -> dict[int, Callable[[list[Any]], None]]:
        """Type code -> apply function taking an entry's decoded field list (replay's path)."""
        ...


S = TypeVar("S", bound=Replayable)
T = TypeVar("T")


@dataclass
class JournalOptions:
    segment_size: int = 16 * 1024 * 1024
    checkpoint_every: int = 2_000_000  # entries; 0 turns count-triggered checkpoints off
    keep_checkpoints: int = 2
    flush_window_ms: float = 0.0
    group_commit: bool = True  # False: every append writes and fsyncs inline (tests)
    # Group commit's writer: "process" (a child process; on real files) or "thread".
    writer: str = "process"
    # Who checks the log's records at start-up: "process" (a child process, while this one
    # applies them; on real files), "inline", or "auto" (a process for logs over 4 MiB).
    replay_scanner: str = "auto"
    # Bytes zero-filled at a time ahead of the open segment's last record, so that commits
    # overwrite written blocks instead of growing the file (journal/writer.py); 0: off.
    preallocate: int = 1 << 20
    # "commit_interval": an entry is acknowledged once written to the log file (kill -9 loses
    # nothing acknowledged) and synced within commit_interval_ms, or at once by ``sync`` (fsync
    # of a file or directory, close of a THROUGH file, umount). "every_op": each entry is
    # synced before it is acknowledged. Only the writer process has a commit interval; the
    # thread and inline writers sync every entry whatever this says.
    durability: str = "commit_interval"
    commit_interval_ms: float = 5.0


@dataclass
class StateCodec(Generic[S]):
    empty: Callable[[], S]
    load: Callable[[apsw.Connection, int], S]
    fill: Callable[[S, apsw.Connection], None]


@dataclass
class OpenReport:
    checkpoint: CheckpointFile | None
    rejected_checkpoints: list[str]
    replayed: int
    last_seq: int
    repaired_tail: TornTail | None


class Journal(Generic[S]):
    def __init__(
        self,
        storage: Storage,
        root: str,
        codec: StateCodec[S],
        options: JournalOptions | None = None,
        on_fatal: Callable[[BaseException], None] = exit_process,
    ) -> None:
        self.storage = storage
        self.root = root
        self.codec = codec
        self.options = options or JournalOptions()
        self.on_fatal = on_fatal
        self.report: OpenReport | None = None
        self._commit: GroupCommit | ProcessCommit | None = None
        self._checkpoint_seq = 0  # entries after this one count towards the next checkpoint
        self._reserve = _not_open
        self._checkpoint_lock = threading.Lock()
        self._encode = entries.encode
        self._codes = entries.TYPE_CODES
        # Data files written unsynced (``data_written`` before their entries) while the writer
        # process syncs ``data_dirs``' file systems before the log (journal/datasync.py); the
        # entries of ``data_codes`` name them, judged at start by ``check_data``
        # (journal/datacut.py). Set before ``open``.
        self.data_dirs: list[str] = []
        self.data_codes: frozenset[int] = frozenset()
        self.check_data: DataCheck | None = None

    # -- open and recovery -------------------------------------------------------------------

    def open(self) -> S:
        """Recovers the state and readies the log for appending; returns the state."""
        storage, root = self.storage, self.root
        try:
            storage.makedirs(join(root, CHECKPOINT_DIR))
            storage.check_writable(root)
            storage.check_writable(join(root, CHECKPOINT_DIR))
        except OSError as exc:
            raise JournalNotWritable(
                f"journal directory {getattr(storage, 'root', '')}/{root} is not writable"
                f" ({exc.strerror or exc}); fix its ownership or permissions, or use another home"
            ) from exc
        lock_fd = None
        if self._uses_writer_process() and isinstance(storage, OsStorage):
            # Served storage has no lock: journal/commit_process.py says why.
            lock_fd = lock_journal_dir(storage, root)
        try:
            state = self._recover(lock_fd)
        except BaseException:
            if lock_fd is not None and self._commit is None:
                os.close(lock_fd)
            raise
        return state

    def _uses_writer_process(self) -> bool:
        """The writer process runs on real files, and on a storage that asked to be served to
        it (the crash simulator's: journal/remote_storage.py); other storage gets the thread."""
        options = self.options
        storage = self.storage
        return (
            options.group_commit
            and options.writer == "process"
            and (isinstance(storage, OsStorage) or is_servable(storage))
        )

    def _recover(self, lock_fd: int | None) -> S:
        storage, root = self.storage, self.root
        listing = list_journal(storage, root)
        if listing.temporaries:
            # Leftovers of an interrupted checkpoint: never renamed into place, never state.
            unlink_durably(storage, listing.temporaries)
        loaded = _build_in_bulk(lambda: self._load_newest_checkpoint(listing.checkpoints))
        state, ckpt, rejected = loaded
        if ckpt is None and rejected and listing.segments and listing.segments[0][0] != 1:
            raise JournalCorrupt(
                rejected[0].split(":")[0],
                None,
                f"no checkpoint verifies ({'; '.join(rejected)}) and the log no longer starts"
                " at entry 1",
                "restore a checkpoint from a backup",
            )
        fast = state.replay_appliers()
        result = _build_in_bulk(
            lambda: read_log(
                storage,
                listing,
                state.last_seq,
                state.apply,
                fast=fast,
                scanner=self.options.replay_scanner,
            )  # fmt: skip
        )
        state.last_seq = max(state.last_seq, result.last_seq)
        tail = result.tail
        if tail is not None:
            self._truncate_torn_tail(tail)
        if self._cut_unsound_data(ckpt.seq if ckpt else 0, state):
            return self._recover(lock_fd)  # the state again, from the log that stays
        last_seq = max(result.last_seq, state.last_seq)
        segment = self._segment_for_append(listing, result, tail, last_seq)
        if self._uses_writer_process():
            self._commit = ProcessCommit(
                segment,
                last_seq + 1,
                lock_fd,
                flush_window_s=self.options.flush_window_ms / 1000.0,
                interval_s=self._interval_s(),
                on_fatal=self.on_fatal,
                data=encode(self.data_dirs if self.orders_data else []),
            )
        else:
            self._commit = GroupCommit(
                segment,
                last_seq + 1,
                threaded=self.options.group_commit,
                flush_window_s=self.options.flush_window_ms / 1000.0,
                on_fatal=self.on_fatal,
            )
        self._reserve = self._commit.reserve
        # Bound directly: awaited once per mutation on the daemon's event loop.
        self.wait_async = self._commit.wait_async  # type: ignore[method-assign]
        self._checkpoint_seq = state.last_seq - result.applied
        self.report = OpenReport(ckpt, rejected, result.applied, last_seq, tail)
        return state

    @property
    def waits_async(self) -> bool:
        """Whether ``wait_async`` waits for a writer (a process or a thread) instead of writing
        and syncing inline, in the caller's thread: only then may an event loop await it."""
        return self._uses_writer_process() or self.options.group_commit

    @property
    def orders_data(self) -> bool:
        """Whether data files named by the log may be written unsynced: the writer process
        syncs their file systems before every sync of the log (journal/datasync.py). Not with
        ``every_op`` (each entry is synced as it is written), nor the thread or inline writer."""
        return bool(self.data_dirs) and self._uses_writer_process() and self._interval_s() > 0

    def data_written(self) -> None:
        """Before appending an entry that names a data file written unsynced (``orders_data``
        only): the data's file systems are synced before the log that holds the entry."""
        if self._commit is not None:  # (None: not opened yet, or closed)
            self._commit.data_written()

    def _cut_unsound_data(self, after_seq: int, state: S) -> bool:
        """Cuts the log before the first entry whose data a power loss took; whether it did."""
        if self.check_data is None:
            return False
        # Listed again (a torn tail's cut may have removed a segment), the strays already
        # warned of by recovery's own listing.
        listing = list_journal(self.storage, self.root, warn=False)
        cut = unsound_tail(
            self.storage, listing, after_seq, self.data_codes, state, self.check_data
        )
        if cut is None:
            return False
        self._truncate_torn_tail(cut)
        return True

    def _interval_s(self) -> float:
        """The writer process's commit interval; 0: every entry synced before its ack."""
        options = self.options
        if options.durability != "commit_interval":
            return 0.0
        return max(options.commit_interval_ms, 0.001) / 1000.0

    def _load_newest_checkpoint(
        self, checkpoints: list[CheckpointFile]
    ) -> tuple[S, CheckpointFile | None, list[str]]:
        rejected: list[str] = []
        for ckpt in reversed(checkpoints):
            try:
                conn = open_checkpoint(self.storage, ckpt)
            except CheckpointInvalid as exc:
                log.error("checkpoint rejected, falling back to an older one: %s", exc)
                rejected.append(str(exc))
                continue
            try:
                return self.codec.load(conn, ckpt.seq), ckpt, rejected
            except (apsw.Error, KeyError, TypeError, ValueError) as exc:
                log.error("checkpoint %s cannot be loaded: %s", ckpt.path, exc)
                rejected.append(f"{ckpt.path}: {exc}")
            finally:
                conn.close()
        return self.codec.empty(), None, rejected

    def _truncate_torn_tail(self, tail: TornTail) -> None:
        """Copies the damaged segment aside, then cuts it back to its last valid record, so
        nothing is ever appended behind garbage. ``shoal journal repair`` does the same."""
        aside = truncate_torn_tail(self.storage, self.root, tail)
        log.warning(
            "truncated a torn tail: %s from offset %d (%d bytes, %s); a copy is in %s",
            tail.path, tail.offset, tail.size - tail.offset, tail.reason, aside,
        )  # fmt: skip

    def _segment_for_append(
        self, listing: Listing, result: ReadResult, tail: TornTail | None, last_seq: int
    ) -> SegmentWriter:
        segments = [
            s for s in listing.segments if not (tail and tail.offset == 0 and s[1] == tail.path)
        ]
        options = self.options
        writer = SegmentWriter(
            self.storage, self.root, options.segment_size, None, 0, 0,
            preallocate=options.preallocate,
            sync_each=not (self._uses_writer_process() and self._interval_s() > 0),
        )  # fmt: skip
        if segments:
            first, path = segments[-1]
            # A log that ends before the checkpoint's entry (its tail was lost, but the checkpoint
            # covers it) continues in a new segment: appending to the old one would leave a gap
            # inside it that the next open would take for damage.
            if result.log_end_seq == last_seq and path in result.segment_ends:
                if tail and tail.path == path:
                    end = allocated = tail.offset
                else:
                    end, allocated = result.segment_ends[path], result.segment_sizes[path]
                writer.open_existing(path, first, end, allocated)
        return writer

    # -- appending ---------------------------------------------------------------------------

    def append(self, entry: Any) -> int:
        """Queues ``entry`` and returns its sequence number; it is durable after ``wait``."""
        # On every mutation's path: no more work here than encoding and queueing.
        return self._reserve(self._codes[type(entry)], self._encode(entry))

    @contextmanager
    def held(self) -> Iterator[None]:
        """Entries appended inside reach the writer (process or thread) in one hand-off when it
        ends (``ProcessCommit.hold``, ``GroupCommit.hold``): nothing inside may wait for them."""
        commit = self._commit
        holding = commit is not None and commit.hold()
        try:
            yield
        finally:
            if holding:
                assert commit is not None
                commit.release()

    def wait(self, seq: int) -> None:
        """Returns once entry ``seq`` may be acknowledged (JournalFailed if it never will be):
        durable with durability "every_op", written to the log file with "commit_interval"."""
        assert self._commit is not None
        self._commit.wait(seq)

    def sync(self, seq: int | None = None) -> None:
        """Returns once entry ``seq`` (default: every entry appended) is durable."""
        assert self._commit is not None
        self._commit.sync(self._commit.next_seq - 1 if seq is None else seq)

    def ask_sync(self, seq: int) -> None:
        """Asks for entry ``seq`` to be made durable soon, not waiting (``sync`` waits): in
        ``held()``, the request goes down with the gathered entries, in their one write."""
        if self._commit is not None:  # (None: not opened yet, or closed)
            self._commit.ask_sync(seq)

    def wait_async(self, seq: int) -> Awaitable[None]:
        """``wait`` for trio tasks: awaiting it never blocks the event loop."""
        assert self._commit is not None
        return self._commit.wait_async(seq)

    def flush(self) -> None:
        assert self._commit is not None
        self._commit.flush()

    @property
    def last_seq(self) -> int:
        assert self._commit is not None
        return self._commit.next_seq - 1

    @property
    def durable_seq(self) -> int:
        commit = self._commit
        assert commit is not None
        commit.catch_up()  # the writer process's timed syncs are acked without a waiter
        return commit.durable_seq

    @property
    def fsyncs(self) -> int:
        return self._commit.fsyncs if self._commit else 0

    @property
    def checkpoint_due(self) -> bool:
        every = self.options.checkpoint_every
        return every > 0 and self.last_seq - self._checkpoint_seq >= every

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, state: S) -> CheckpointFile:
        """Writes a checkpoint of ``state``; the caller keeps it from changing meanwhile.

        Order: everything appended is made durable; the log moves to a new segment (so older
        segments hold only entries the checkpoint covers); the checkpoint is written durably;
        then checkpoints beyond the newest ``keep_checkpoints`` and the segments that only they
        needed are deleted.
        """
        assert self._commit is not None
        with self._checkpoint_lock:
            commit = self._commit
            commit.flush()
            seq = state.last_seq
            if seq != commit.durable_seq:
                raise JournalError(f"state is at {seq} but the log at {commit.durable_seq}")
            commit.rotate(seq + 1)
            ckpt = write_checkpoint(
                self.storage, self.root, seq, lambda conn: self.codec.fill(state, conn)
            )
            self._checkpoint_seq = seq
            self._collect_garbage()
            return ckpt

    def _collect_garbage(self) -> None:
        listing = list_journal(self.storage, self.root)
        keep = max(1, self.options.keep_checkpoints)
        old = listing.checkpoints[:-keep]
        kept = listing.checkpoints[-keep:]
        # Until `keep` checkpoints exist, the empty state at entry 0 is the fallback for the
        # oldest one, so the log from entry 1 must stay.
        oldest_kept = kept[0].seq if len(kept) >= keep else 0
        doomed = [c.path for c in old]
        # A segment may go once the next one starts at or below oldest_kept + 1: every entry in
        # it is then covered by every checkpoint we keep.
        segs = listing.segments
        for (_first, path), (next_first, _) in zip(segs, segs[1:], strict=False):
            if next_first <= oldest_kept + 1:
                doomed.append(path)
        if doomed:
            unlink_durably(self.storage, doomed)

    def close(self, state: S | None = None) -> None:
        """Flushes the log; with ``state``, writes a final checkpoint first (clean shutdown)."""
        if self._commit is None:
            return
        if state is not None and self._commit.failed is None:
            self.checkpoint(state)
        self._commit.close()
        self._commit = None
        self._reserve = _not_open

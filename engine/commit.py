"""The commit gate: the only code that appends journal entries.

Every change to Shoal's state — a namespace operation, a mount, a block stored or dropped, an
upload finished — is proposed to the gate as an entry. Under its lock the gate checks the entry
against the current state with the very rules replay applies it by (``engine.admission``),
appends it, applies it, tells the observers, and hands back its sequence number, for which the
proposer waits (``durable``) outside the lock. An entry that would not apply is refused with
``Refused`` before it reaches the log: a log never holds an entry that replay cannot apply.

Appending and applying under one lock make the log's order the order of application, so the
check always sees the state the entry will be applied to. Waiting outside the lock is what lets
concurrent proposers share one fsync (group commit). Blocking I/O (tier files, the UFS) never
runs under this lock; the journal's append only queues the entry for its writer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from engine import metrics
from engine.admission import admit
from engine.state import State
from journal.journal import Journal
from journal.layout import CheckpointFile

log = logging.getLogger(__name__)


class Deferred:
    """The highest sequence number committed inside ``CommitGate.deferred()``."""

    __slots__ = ("seq",)

    def __init__(self) -> None:
        self.seq = 0


class CommitGate:
    def __init__(self, state: State, journal: Journal[State]) -> None:
        self.state = state
        self.journal = journal
        # Held while validating against the state and committing; readers of the state take it
        # too, so they never see an entry half applied.
        self.lock = threading.RLock()
        self._deferral = threading.local()
        # Called with each committed entry, under the lock (so: cheap, no I/O). The FUSE
        # frontend listens to tell the kernel about changes it did not make itself.
        self.observers: list[Callable[[Any], None]] = []

    @property
    def orders_data(self) -> bool:
        """Whether a block file may be written unsynced before its entry: the journal syncs
        the tiers before the log (journal/datasync.py)."""
        return self.journal.orders_data

    def data_written(self) -> None:
        """A block file was written unsynced (``orders_data``); its entry comes next."""
        self.journal.data_written()

    def commit(self, entry: Any) -> int:
        """Checks ``entry`` against the state, appends it, applies it; its sequence number.
        The caller holds ``lock``. Raises ``Refused`` (nothing appended) for an entry that
        replay could not apply."""
        admit(self.state, entry)
        seq = self.journal.append(entry)
        self.state.apply(entry, seq)
        for observe in self.observers:
            observe(entry)
        return seq

    def batched(self) -> AbstractContextManager[None]:
        """Commits inside (the caller holds ``lock`` throughout) reach the journal's writer
        in one hand-off when it ends: a batch of entries, one system call and one wake-up of
        the writer. Nothing inside may wait for their durability."""
        return self.journal.held()

    def durable(self, seq: int) -> None:
        """Returns once entry ``seq`` may be acknowledged (or, in ``deferred()``, records it):
        durable with journal.durability = "every_op", written to the log with the default
        "commit_interval" (``sync`` says what waits for more)."""
        box = getattr(self._deferral, "box", None)
        if box is not None:
            box.seq = max(box.seq, seq)
            return
        if metrics.ENABLED:
            metrics.timed_wait(self.journal.wait, seq)
        else:
            self.journal.wait(seq)
        if self.journal.checkpoint_due:
            self.checkpoint_if_due()

    async def durable_async(self, seq: int) -> None:
        """``durable`` for a trio task, which never blocks its event loop: the automatic
        checkpoint is left to the caller (``checkpoint_due``; ``checkpoint_if_due`` in a
        thread)."""
        await self.journal.wait_async(seq)

    @property
    def waits_async(self) -> bool:
        """Whether ``durable_async`` may be awaited on an event loop (never blocks it)."""
        return self.journal.waits_async

    @property
    def checkpoint_due(self) -> bool:
        return self.journal.checkpoint_due

    def checkpoint_if_due(self) -> None:
        """The automatic checkpoint, after an operation's entry was acknowledged (blocking)."""
        try:
            self.checkpoint(only_if_due=True)
        except OSError as exc:
            # The operation is durable already and must not report a failure; the
            # checkpoint stays due and the next operation retries it.
            log.error("automatic checkpoint failed, will retry: %s", exc)

    def sync(self, seq: int | None = None) -> None:
        """Returns once entry ``seq`` (default: every entry committed so far) is durable.

        With journal.durability = "commit_interval", ``durable`` returns once an entry is
        written to the log file, and a power loss may still take it (with every later one)
        within the commit interval. What promises more waits here: fsync and fsyncdir, the
        close of a file written THROUGH, umount; and any effect outside the journal that a
        lost entry would leave the state contradicting (a store move, the removal of a tier
        file that held a block's only copy) waits here before it is carried out."""
        self.journal.sync(seq)

    def ask_sync(self, seq: int) -> None:
        """Asks for entry ``seq`` to be durable soon without waiting: inside ``batched()``,
        the batch and the request reach the writer in one write; ``sync`` then only waits."""
        self.journal.ask_sync(seq)

    def synced(self) -> bool:
        """Whether every entry committed so far is durable."""
        journal = self.journal
        return journal.durable_seq >= journal.last_seq

    def checkpoint(self, *, only_if_due: bool = False) -> CheckpointFile | None:
        """Writes a checkpoint of the state; nothing changes the state meanwhile."""
        with self.lock:
            if only_if_due and not self.journal.checkpoint_due:
                return None  # another operation got there first
            return self.journal.checkpoint(self.state)

    @contextmanager
    def deferred(self) -> Iterator[Deferred]:
        """Commits inside return without waiting for durability; the caller must wait for
        ``box.seq`` (``await journal.wait_async(box.seq)``) before acknowledging them. This is
        how trio tasks share fsyncs without blocking the event loop."""
        box = Deferred()
        self._deferral.box = box
        try:
            yield box
        finally:
            self._deferral.box = None

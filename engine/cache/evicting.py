"""Eviction's file work, decided under the namespace lock and done outside it.

Making room (engine/cache/blockcache.py's ``make_room``) runs with the namespace lock held, the
commit gate's lock that every namespace change and every store waits for. So there it only
decides and journals: it detaches its victims from their tier's order and accounting (nobody
picks them twice, and the room counts as free at once), journals the drops, reserves room
below for the demotions, and queues here what touches files. Whoever made room then runs the
queue after leaving the lock (``Pending.run``):

- a move (a demotion, a promotion): read the source file and check its CRC, write the copy
  (durable on a disk tier) in the target tier; then, under the lock again, journal BlockMoved
  only if the block is still what was chosen (same tier, length and checksum: not dropped or
  rewritten meanwhile), or give the reservation back. Until BlockMoved is applied, readers
  read the source copy, which is still there.
- an unlink: wait until the entry that made the file unwanted (BlockMoved, BlockRemoved, or
  what made the block garbage) is durable, then delete the file.

Crash rules: BlockMoved is committed only after its target file is whole (written, synced),
and a source file is deleted only after BlockMoved (or BlockRemoved) is durable: a crash at
any step leaves the journal naming a whole file, and at worst an orphan (a copy whose move was
never journaled, a file whose removal was) that reconcile deletes at the next start and fsck
names. While an unlink is queued, no block is written under that (tier, key) name again
(``busy``): the late unlink would delete the new file.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from engine.cache.crc import crc32
from engine.cache.tiers import BlockKey, TierStore
from engine.commit import CommitGate
from engine.state import BlockInfo

log = logging.getLogger(__name__)


class Move(NamedTuple):
    """A block to copy from ``src`` to ``dst`` (its room there already counted)."""

    key: BlockKey
    info: BlockInfo  # as chosen: the move is journaled only if the block is still this
    src: TierStore
    dst: TierStore
    give_back: bool  # on failure: back into the source tier (promotion), or dropped (eviction)


class Unlink(NamedTuple):
    """A tier file to delete once the journal is durable up to ``seq`` (None: all committed
    when it runs; -1: nothing to wait for, no entry names the file)."""

    tier: TierStore
    key: BlockKey
    seq: int | None


# Called under the namespace lock with a move and the status of its copy (None: not made).
Finish = Callable[[Move, "os.stat_result | None"], None]


class Pending:
    """The queue of eviction file work, and what it holds back meanwhile."""

    def __init__(self, gate: CommitGate) -> None:
        self.gate, self.lock = gate, gate.lock  # the namespace lock
        self.jobs: deque[Move | Unlink] = deque()
        self.moving: set[BlockKey] = set()  # detached blocks whose move is queued or running
        self.unlinking: dict[tuple[str, BlockKey], int] = {}  # -> how many unlinks queued

    def move(self, job: Move) -> None:
        """With the lock held."""
        self.moving.add(job.key)
        self.jobs.append(job)

    def unlink(self, tier: TierStore, key: BlockKey, seq: int | None) -> None:
        """With the lock held."""
        name = (tier.name, key)
        self.unlinking[name] = self.unlinking.get(name, 0) + 1
        self.jobs.append(Unlink(tier, key, seq))

    def busy(self, tier: str, key: BlockKey) -> bool:
        """Whether a block file ``key`` in ``tier`` must not be written now (with the lock)."""
        return (tier, key) in self.unlinking or key in self.moving

    def run(self, finish: Finish) -> None:
        """Without the lock: does every queued job (also those other threads queued)."""
        while True:
            try:
                job = self.jobs.popleft()  # thread-safe: each job is done once
            except IndexError:
                return
            if isinstance(job, Move):
                status = self._copy(job)
                with self.lock:
                    finish(job, status)
            else:
                try:
                    if job.seq is None or job.seq > 0:
                        self.gate.sync(job.seq)
                    job.tier.remove(job.key)
                finally:
                    with self.lock:
                        self._unlinked((job.tier.name, job.key))

    def _unlinked(self, name: tuple[str, BlockKey]) -> None:
        left = self.unlinking.pop(name) - 1
        if left:
            self.unlinking[name] = left

    def _copy(self, job: Move) -> os.stat_result | None:
        try:
            data = job.src.read(job.key)
            if len(data) != job.info.length or crc32(data) != job.info.checksum:
                log.warning("block %s in %s failed its check: not moved", job.key, job.src.name)
                return None
            return job.dst.write(job.key, data)
        except OSError as exc:
            log.warning("cannot move block %s to %s: %s", job.key, job.dst.name, exc)
            return None

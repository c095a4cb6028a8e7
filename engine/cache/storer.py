"""Fetched blocks stored into the cache behind the readers' backs.

A reader that missed is answered with the bytes it read from the UFS; the whole block is
offered here, and one storer thread checksums it and writes its tier file, then commits the
BlockCached entries of a batch of blocks in one pass under the lock, handed to the journal's
writer in one write (engine/cache/blockcache.py's ``write_block``, ``commit_block``), many
blocks to one wait for durability.
The queue is bounded (bytes and blocks): an offer beyond the bound is dropped, counted
(``CacheStats.stores_dropped``), and the block is simply fetched again next time; readers are
never slowed to let the storer catch up. A queued block's bytes serve its readers until it is
stored: none waits on a tier write.

The queue is volatile: a crash loses the blocks in it, which are then not cached, nothing
more. A crash in the middle of a store leaves at worst a tier file without its BlockCached,
an orphan that reconcile removes at the next start (docs/cache.md).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Protocol

from engine.cache.stats import CacheStats
from engine.cache.tiers import BlockKey, Written
from engine.namespace import Namespace

log = logging.getLogger(__name__)

QUEUE_BYTES = 256 << 20  # bytes of blocks waiting to be stored: 64 default 4 MiB blocks
QUEUE_BLOCKS = 4096  # blocks waiting: small files' blocks meet this bound before the bytes
BATCH = 64  # blocks stored between two waits for durability
# How long the storer, woken by a first block, lets more gather before storing them: readers
# answered every few hundred µs each offer a block, and one batch of them costs one wake-up
# and one wait for durability instead of one of each per block.
GATHER_S = 0.002


class StoreTarget(Protocol):
    """What the storer needs of the block cache."""

    ns: Namespace
    stats: CacheStats

    def write_block(
        self, key: BlockKey, data: bytes, fingerprint: str | None
    ) -> Written | int | None: ...

    def commit_block(self, w: Written) -> int | None: ...


class BlockStorer:
    def __init__(self, cache: StoreTarget) -> None:
        self.cache = cache
        self.max_bytes = QUEUE_BYTES
        self.max_blocks = QUEUE_BLOCKS
        # key -> (bytes, fingerprint of the UFS file they came from): queued or being stored
        self._pending: dict[BlockKey, tuple[bytes, str | None]] = {}
        self._queue: deque[BlockKey] = deque()
        self._bytes = 0
        self._busy = False  # a batch is being stored
        self._unacked = 0  # the last BlockCached committed and not waited for (storer thread)
        self._closed = False
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def offer(self, key: BlockKey, data: bytes, fingerprint: str | None = None) -> bool:
        """Queues block ``key`` to be stored; False if it was dropped (the queue is full, or
        closing). Never waits."""
        with self._cond:
            if key in self._pending:
                return True
            if (
                self._closed
                or self._bytes + len(data) > self.max_bytes
                or len(self._pending) >= self.max_blocks
            ):
                self.cache.stats.stores_dropped += 1
                return False
            self._pending[key] = (data, fingerprint)
            self._queue.append(key)
            self._bytes += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cache-storer", daemon=True)
                self._thread.start()
            if len(self._queue) == 1 or len(self._queue) >= BATCH:
                # Only the first block wakes the storer (a wake-up is a system call and a
                # thread switch); the others gather, or wake it once a batch is full.
                self._cond.notify_all()
            return True

    def pending(self, key: BlockKey) -> bytes | None:
        """The bytes of block ``key`` if it waits to be stored (or is being stored)."""
        got = self._pending.get(key)  # no lock: a dict lookup is atomic
        return None if got is None else got[0]

    @property
    def queued(self) -> int:
        """Blocks waiting to be stored or being stored (a glance: no lock)."""
        return len(self._pending)

    def flush(self) -> None:
        """Returns once every block offered so far is stored (or turned away)."""
        with self._cond:
            while self._queue or self._busy:
                self._cond.wait()

    def discard(self) -> int:
        """Forgets the queued blocks (not those of the batch being stored): what a crash does
        to the queue. How many were forgotten."""
        with self._cond:
            for key in self._queue:
                self._bytes -= len(self._pending.pop(key)[0])
            lost = len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
            return lost

    def close(self) -> None:
        """Stores what is queued, then stops the thread; later offers are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed, and nothing left
                if len(self._queue) < BATCH and not self._closed:
                    self._cond.wait(GATHER_S)
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                self._busy = True
            try:
                self._store(batch)
            finally:
                with self._cond:
                    for key in batch:
                        data, _fp = self._pending.pop(key)
                        self._bytes -= len(data)
                    self._busy = False
                    self._cond.notify_all()

    def _store(self, batch: list[BlockKey]) -> None:
        # Each block file is written outside the lock; then one pass under it commits the
        # batch's BlockCached entries, handed to the journal's writer in one write.
        cache = self.cache
        written: list[Written] = []
        for key in batch:
            data, fingerprint = self._pending[key]
            try:
                got = cache.write_block(key, data, fingerprint)
            except Exception:  # a background store must never die silently, nor stop the rest
                log.exception("caching block %s failed", key)
                continue
            if isinstance(got, Written):
                written.append(got)
        last = 0
        if written:
            gate = cache.ns.gate
            with cache.ns.lock, gate.batched():
                for w in written:
                    try:
                        seq = cache.commit_block(w)
                    except Exception:
                        log.exception("caching block %s failed", w.key)
                        continue
                    if seq is not None:
                        cache.stats.stored_blocks += 1  # one thread: no lost increment
                    last = max(last, seq or 0)
        self._unacked = max(self._unacked, last)
        if self._unacked and not self._queue:  # (a glance: a block queued meanwhile is stored next)
            # Outside the lock, once the queue is empty: while blocks keep coming, batches
            # follow each other without waiting (their entries are written meanwhile), and
            # the wait before idling covers them all. Its blocks are in the map already (a
            # crash before this point loses their entries: orphan files, nothing worse);
            # ``flush`` returns after this wait.
            try:
                cache.ns.gate.durable(self._unacked)
            except Exception:
                log.exception("waiting for cached blocks to be durable failed")
            self._unacked = 0

"""The fetch path of the block cache: misses fetched once, handed over, stored in the back.

However many readers miss the same block at the same time, one fetch thread fetches it
(single flight); its readers, the first included, wait for its bytes. The block's bytes reach
its readers as they arrive: each reader waits only for its own range (a 4 KiB read of a cold
4 MiB block is served after its first chunk, not after the whole block), and never longer than
its read's deadline: a store that never answers holds a fetch thread until the connector gives
up, not the reader, who is answered ``Unavailable`` when the deadline passes. The whole block
is then handed to the storer (engine/cache/storer.py), which writes it to a tier in the
background, while its readers are served from memory. A store read by system calls (a local
disk, NFS) is read in the reader's own thread instead (``read_local``): cheaper than handing
the read to a fetch thread and waiting for it. Readahead queues fetches of the blocks a
sequential reader will want next, each block handed over as soon as it is complete.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Protocol

from engine.cache.storer import BlockStorer, StoreTarget
from engine.cache.tiers import BlockKey
from engine.errors import Unavailable
from engine.state import BlockInfo

log = logging.getLogger(__name__)

READAHEAD_RUN = 4  # blocks fetched by one request of the readahead
# Fetch the blocks readers miss. More than the FUSE layer's threads: a store that hangs keeps a
# thread until the connector gives up, and fetches of a store that answers must still find one.
FETCH_THREADS = 64
# How long a read waits for its store, in all (the config key ufs.read_deadline_s): long enough
# for S3's 30 s read timeout and one more attempt, well within what a reader will wait.
READ_DEADLINE_S = 45.0


class Deadline:
    """When a read stops waiting for its store (``time.monotonic()``), and the error it then
    answers: the whole read is bounded, across the connector's retries and the fetch path's
    own (a reader whose fetch failed fetches again), not each attempt."""

    __slots__ = ("at", "_describe")

    def __init__(self, seconds: float, describe: Callable[[], str]) -> None:
        self.at = time.monotonic() + seconds
        self._describe = describe  # called only when it passed: a path costs a tree walk

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> Unavailable:
        return Unavailable(self._describe())


class BlockStore(StoreTarget, Protocol):
    """What the fetch path needs of the block cache (engine/cache/blockcache.py): its cached
    blocks, where to store a fetched one, its counters, and the namespace whose lock and block
    map it uses."""

    def read(self, key: BlockKey, offset: int = 0, length: int = -1) -> bytes | None: ...

    def info(self, key: BlockKey) -> BlockInfo | None: ...

    def store(
        self, key: BlockKey, data: bytes, fingerprint: str | None = None, below: float | None = None
    ) -> bool: ...


class _Flight:
    """A block being fetched (and then stored). Its bytes grow as they arrive, and a reader
    waits only until its own range has come, not for the whole block."""

    __slots__ = ("buf", "data", "ended", "error", "cond")

    def __init__(self) -> None:
        self.buf = bytearray()  # what has come so far
        self.data: bytes | None = None  # the whole block, once the fetch ended well
        self.ended = False
        self.error: Exception | None = None  # why the fetch failed, for its first reader
        self.cond = threading.Condition(threading.Lock())

    def add(self, chunk: bytes | memoryview) -> None:
        with self.cond:
            self.buf += chunk
            self.cond.notify_all()

    def whole(self, block: bytes) -> None:
        """The whole block at once (a local read): kept as it is, not copied into ``buf``."""
        with self.cond:
            self.data = block

    def end(self, ok: bool, error: Exception | None = None) -> None:
        with self.cond:
            if ok and self.data is None:
                self.data = bytes(self.buf)
                self.buf = bytearray()
            self.ended = True
            self.error = error
            self.cond.notify_all()

    def wait_for(self, offset: int, length: int, deadline: Deadline | None = None) -> bytes | None:
        """Bytes ``offset``..``offset+length`` of the block (fewer at its end) once they have
        come; None if the fetch failed before they did. Raises ``deadline``'s Unavailable if
        it passes first."""
        want = offset + length if length >= 0 else -1
        with self.cond:
            while True:
                if self.data is not None:
                    return _cut(self.data, offset, length)
                if 0 <= want <= len(self.buf):
                    return bytes(self.buf[offset:want])
                if self.ended:
                    return None
                if deadline is None:
                    self.cond.wait()
                    continue
                left = deadline.left()
                if left <= 0:
                    raise deadline.passed()
                self.cond.wait(left)


def _cut(block: bytes, offset: int, length: int) -> bytes:
    end = len(block) if length < 0 else min(len(block), offset + length)
    return block if offset == 0 and end == len(block) else block[offset:end]


class BlockFetcher:
    def __init__(self, cache: BlockStore) -> None:
        self.cache = cache
        self.stats = cache.stats
        self._inflight: dict[BlockKey, _Flight] = {}  # being fetched
        self._inflight_lock = threading.Lock()
        self.storer = BlockStorer(cache)  # fetched blocks, written to a tier in the back
        self._readahead = ThreadPoolExecutor(8, thread_name_prefix="readahead")
        self._fetchers = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="fetch")
        self._prefetches: set[Future[None]] = set()
        self._queued: set[BlockKey] = set()  # readaheads submitted, not finished

    def get(
        self,
        key: BlockKey,
        fetch: Callable[[], Iterable[bytes]],
        offset: int = 0,
        length: int = -1,
        cache: bool = True,
        deadline: Deadline | None = None,
    ) -> bytes:
        """Bytes ``offset``..``offset+length`` of the block: from the cache, or from the block
        ``fetch``-ed once however many readers miss it at the same time (``fetch`` yields its
        bytes as they arrive). Each reader has its bytes as soon as they have come; the rest of
        the block is fetched and cached in the background. Raises ``deadline``'s Unavailable
        once it passes, whatever the fetch is still waiting for."""
        while True:
            data = self._cached(key, offset, length)
            if data is not None:
                return data
            with self._inflight_lock:
                flight = self._inflight.get(key)
                if flight is None and (queued := self.storer.pending(key)) is not None:
                    self.stats.hits += 1
                    return _cut(queued, offset, length)
                if flight is None:
                    flight = self._inflight[key] = _Flight()
                    leader = True
                else:
                    leader = False
                    self.stats.flight_joins += 1
            if leader:
                # Stored, and gone from the storer's queue, between the first look and the
                # lock: a second look before the block is fetched again.
                data = self.cache.read(key, offset, length)
                if data is not None:
                    self._abandon(key, flight)
                    self.stats.hits += 1
                    return data
                self.stats.misses += 1
                self._start(key, flight, fetch, cache)
            got = flight.wait_for(offset, length, deadline)
            if got is not None:
                if not leader:
                    self.stats.hits += 1
                return got
            if leader:  # its own fetch failed: the reason is its answer
                raise flight.error or Unavailable(f"fetching block {key} failed")
            # Another reader's fetch failed (or found the block cached meanwhile): look again.

    def _abandon(self, key: BlockKey, flight: _Flight) -> None:
        """A flight never started: its joiners wake with nothing and look again."""
        with self._inflight_lock:
            flight.end(False)
            if self._inflight.get(key) is flight:
                del self._inflight[key]

    def _cached(self, key: BlockKey, offset: int, length: int) -> bytes | None:
        data = self.cache.read(key, offset, length)
        if data is not None:
            self.stats.hits += 1
        return data

    def read_local(
        self,
        key: BlockKey,
        read: Callable[[], tuple[bytes, str | None]],
        offset: int = 0,
        length: int = -1,
        cache: bool = True,
    ) -> bytes:
        """``get`` for a store read by system calls: a miss ``read``s the whole block (and
        the fingerprint of the file it came from) in the caller's thread, answers from it, and
        offers the block to the storer. The read is a flight like a fetch's, so readahead,
        a prefetch or another reader of the block joins it instead of reading it again; readers
        of a block being stored are served from its bytes, never wait for a tier write."""
        data = self._cached(key, offset, length)
        if data is not None:
            return data
        with self._inflight_lock:
            queued = self.storer.pending(key)
            flight = self._inflight.get(key)
            mine = queued is None and flight is None
            if mine:
                flight = self._inflight[key] = _Flight()
        if queued is not None:
            self.stats.hits += 1
            return _cut(queued, offset, length)
        assert flight is not None
        if not mine:
            got = flight.wait_for(offset, length)
            if got is not None:
                self.stats.hits += 1
                return got
            return self.read_local(key, read, offset, length, cache)  # it failed: try anew
        try:
            block, fingerprint = read()
        except Exception as exc:
            self._finish(key, flight, False, False, exc)
            raise
        self.stats.misses += 1
        self.stats.ufs_bytes_read += len(block)
        flight.whole(block)  # the bytes read are the bytes answered and stored: no copy
        self._finish(key, flight, True, cache, fingerprint=fingerprint)
        return _cut(block, offset, length)

    def read_nowait(
        self,
        key: BlockKey,
        read: Callable[[], tuple[bytes, str | None] | None],
        offset: int = 0,
        length: int = -1,
        cache: bool = True,
    ) -> bytes | None:
        """``read_local`` for the event loop, which may not wait: ``read`` must not either
        (None back: it would have). None if the block is being read by another thread (which
        the caller's thread then joins) or ``read`` would wait; else the bytes, the block
        offered to the storer as ``read_local`` does. No flight of its own: the read ends
        before any other reader could join it (one read by a thread at the same moment is
        one read too many, and one offer the storer ignores)."""
        queued = self.storer.pending(key)
        if queued is not None:
            self.stats.hits += 1
            return _cut(queued, offset, length)
        if key in self._inflight:  # no lock: a dict lookup is atomic
            return None
        got = read()
        if got is None:
            return None
        block, fingerprint = got
        self.stats.misses += 1
        self.stats.ufs_bytes_read += len(block)
        if cache:
            self.storer.offer(key, block, fingerprint)
        return _cut(block, offset, length)

    def _start(
        self, key: BlockKey, flight: _Flight, fetch: Callable[[], Iterable[bytes]], cache: bool
    ) -> None:
        """Fetches a missed block on a fetch thread, so that no reader waits on the store
        longer than its deadline."""
        try:
            future = self._fetchers.submit(self._drain, key, flight, fetch, cache)
        except RuntimeError:  # closing: the reader's own thread fetches it
            self._drain(key, flight, fetch, cache)
            return
        with self._inflight_lock:
            self._prefetches.add(future)
        future.add_done_callback(self._later_done)

    def _drain(
        self, key: BlockKey, flight: _Flight, fetch: Callable[[], Iterable[bytes]], cache: bool
    ) -> None:
        ok = False
        error: Exception | None = None
        try:
            for chunk in fetch():
                flight.add(chunk)
                self.stats.ufs_bytes_read += len(chunk)
            ok = True
        except Exception as exc:  # handed to the block's first reader (if it still waits)
            error = exc
            log.debug("fetching block %s failed: %s", key, exc)
        finally:
            self._finish(key, flight, ok, cache, error)

    def _finish(
        self,
        key: BlockKey,
        flight: _Flight,
        ok: bool,
        cache: bool,
        error: Exception | None = None,
        below: float | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """A fetch ended: the flight's readers are woken; a whole block goes to the storer,
        whose queue serves its readers from then on (offered first: no reader falls between
        the two and fetches it again). A prefetch's (``below`` given) is stored on this thread
        instead, in free room only, its flight serving readers until then: no queue builds."""
        prefetched = cache and ok and below is not None
        with self._inflight_lock:
            flight.end(ok, error)
            if cache and flight.data and not prefetched:
                self.storer.offer(key, flight.data, fingerprint)
            if self._inflight.get(key) is flight and not prefetched:
                del self._inflight[key]
        if prefetched and below is not None:
            self._store_prefetched(key, flight, below)

    def readahead(
        self,
        file: int,
        version: int,
        first: int,
        last: int,
        block_size: int,
        fetch: Callable[[int, int], Iterable[bytes]],
    ) -> None:
        """Fetches and caches blocks ``first``..``last`` of a file version in the background,
        except those cached or already on their way. Consecutive wanted blocks go in runs of
        up to READAHEAD_RUN, one request each (``fetch(first_index, count)`` yields their
        bytes end to end, as they arrive): fewer round trips than a request per block, more
        streams in flight than one request for all."""
        # No lock: list() copies the keys in one step (readers of a cached stream call this
        # on every batch; they must not queue on the namespace's lock).
        blocks = list(self.cache.ns.state.blocks.get(file, {}))
        cached = {idx for (v, idx) in blocks if v == version}
        runs: list[list[BlockKey]] = []
        with self._inflight_lock:
            busy = self._inflight.keys() | self._queued
            for idx in range(first, last + 1):
                key = (file, version, idx)
                if idx in cached or key in busy or self.storer.pending(key) is not None:
                    continue
                if runs and runs[-1][-1][2] == idx - 1 and len(runs[-1]) < READAHEAD_RUN:
                    runs[-1].append(key)
                else:
                    runs.append([key])
            for run in runs:
                self._queued.update(run)
        for run in runs:
            future = self._readahead.submit(self._fetch_run, run, block_size, fetch)
            with self._inflight_lock:
                self._prefetches.add(future)
            future.add_done_callback(functools.partial(self._readahead_done, run))

    def later(self, work: Callable[[], None]) -> None:
        """Runs ``work`` (a readahead decision's follow-up) on a readahead thread."""
        future = self._readahead.submit(self._quietly, work)
        with self._inflight_lock:
            self._prefetches.add(future)
        future.add_done_callback(self._later_done)

    def _later_done(self, future: Future[None]) -> None:
        with self._inflight_lock:
            self._prefetches.discard(future)

    @staticmethod
    def _quietly(work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # readahead is a guess: a failure only costs the guess
            log.debug("readahead failed: %s", exc)

    def _readahead_done(self, run: list[BlockKey], future: Future[None]) -> None:
        with self._inflight_lock:
            self._prefetches.discard(future)
            self._queued.difference_update(run)

    def fetch_now(
        self,
        keys: list[BlockKey],
        block_size: int,
        fetch: Callable[[int, int], Iterable[bytes]],
        below: float,
    ) -> None:
        """Fetches blocks ``keys`` (consecutive, of one file version) on the calling thread
        (a directory prefetch's), one flight each that readers who miss them join, except
        those cached or on their way; each block is stored on this thread too (the caller is
        held back by its stores, no queue grows) and only where its tier stays below ``below``
        of its quota without evicting anything."""
        self._fetch_run(keys, block_size, fetch, below)

    def _fetch_run(
        self,
        keys: list[BlockKey],
        block_size: int,
        fetch: Callable[[int, int], Iterable[bytes]],
        below: float | None = None,
    ) -> None:
        flights: dict[BlockKey, _Flight] = {}
        with self._inflight_lock:
            for key in keys:
                if key not in self._inflight and self.storer.pending(key) is None:
                    flights[key] = self._inflight[key] = _Flight()
        with self.cache.ns.lock:
            for key in list(flights):
                if self.cache.info(key) is not None:  # cached since: nothing to fetch for it
                    self._finish(key, flights.pop(key), False, False)
        if not flights:
            return
        # Readers may have fetched some of the run's blocks themselves since it was queued:
        # only the span of the blocks still wanted is asked for.
        lo = min(key[2] for key in flights)
        hi = max(key[2] for key in flights)
        file, version = keys[0][0], keys[0][1]
        received = 0  # bytes of the span so far
        self.stats.misses += len(flights)
        start = time.perf_counter()
        try:
            # Each block is handed over (and stored) as soon as its last byte has come.
            for chunk in fetch(lo, hi - lo + 1):
                view = memoryview(chunk)
                self.stats.ufs_bytes_read += len(view)
                while view:
                    idx, within = lo + received // block_size, received % block_size
                    take = min(len(view), block_size - within)
                    key = (file, version, idx)
                    flight = flights.get(key)
                    if flight is not None:
                        flight.add(view[:take])
                        if within + take == block_size:
                            self._finish(key, flights.pop(key), True, True, below=below)
                    received += take
                    view = view[take:]
            log.debug(
                "readahead of blocks %d..%d of file %d: %d bytes in %.1f ms",
                lo, hi, file, received, (time.perf_counter() - start) * 1e3,
            )  # fmt: skip
        except Exception as exc:  # readahead is a guess: waiting readers fetch for themselves
            log.debug("readahead of %s.. failed: %s", keys[0], exc)
            for key, flight in flights.items():
                self._finish(key, flight, False, True)
            return
        # The end of the span: the file's last block is short; blocks past its end got none
        # (their readers fetch for themselves and learn what is there).
        for key, flight in flights.items():
            self._finish(key, flight, bool(flight.buf), True, below=below)

    def _store_prefetched(self, key: BlockKey, flight: _Flight, below: float) -> None:
        try:
            if flight.data:
                stored = self.cache.store(key, flight.data, below=below)
                self.stats.count_prefetch(len(flight.data) if stored else -1)
        except Exception:  # a background store must never die silently
            log.exception("caching block %s failed", key)
        finally:
            with self._inflight_lock:
                if self._inflight.get(key) is flight:
                    del self._inflight[key]

    def drain(self) -> None:
        """Waits until every readahead is fetched and every block handed to the storer is
        stored (or turned away)."""
        while True:
            with self._inflight_lock:
                pending = list(self._prefetches)
            if not pending:
                break
            wait(pending)
        self.storer.flush()

    def close(self) -> None:
        self._readahead.shutdown(wait=True, cancel_futures=True)
        self._fetchers.shutdown(wait=True)
        self.storer.close()

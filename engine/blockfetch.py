"""The fetch path of the block cache: misses fetched once, handed over, stored in the back.

However many readers miss the same block at the same time, one fetches it (single flight); the
others wait for its bytes. The block is handed to every reader first and written to a tier by
a background writer, during which readers of it are served from memory. Readahead queues
fetches of the blocks a sequential reader will want next.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from engine.tiers import BlockKey

if TYPE_CHECKING:
    from engine.blockcache import BlockCache

log = logging.getLogger(__name__)

READAHEAD_RUN = 4  # blocks fetched by one request of the readahead


class _Flight:
    """A block being fetched (and then stored): its readers wait for ``done``."""

    __slots__ = ("data", "done")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.done = threading.Event()


def _cut(block: bytes, offset: int, length: int) -> bytes:
    end = len(block) if length < 0 else min(len(block), offset + length)
    return block if offset == 0 and end == len(block) else block[offset:end]


class BlockFetcher:
    def __init__(self, cache: BlockCache) -> None:
        self.cache = cache
        self.stats = cache.stats
        self._inflight: dict[BlockKey, _Flight] = {}  # being fetched
        self._storing: dict[BlockKey, _Flight] = {}  # fetched, being written to a tier
        self._inflight_lock = threading.Lock()
        self._writer = ThreadPoolExecutor(2, thread_name_prefix="cache-writer")
        self._readahead = ThreadPoolExecutor(8, thread_name_prefix="readahead")
        self._prefetches: set[Future[None]] = set()
        self._queued: set[BlockKey] = set()  # readaheads submitted, not finished

    def get(
        self,
        key: BlockKey,
        fetch: Callable[[], bytes],
        offset: int = 0,
        length: int = -1,
        cache: bool = True,
    ) -> bytes:
        """Bytes ``offset``..``offset+length`` of the block: from the cache, or from the whole
        block ``fetch``-ed once (however many readers miss it at the same time). The fetched
        block is handed to the readers at once and cached in the background."""
        data = self.cache.read(key, offset, length)
        if data is not None:
            self.stats.hits += 1
            return data
        while True:
            with self._inflight_lock:
                flight = self._inflight.get(key) or self._storing.get(key)
                if flight is None:
                    flight = self._inflight[key] = _Flight()
                    leader = True
                else:
                    leader = False
            if not leader:
                flight.done.wait()
                if flight.data is not None:
                    self.stats.hits += 1
                    return _cut(flight.data, offset, length)
                continue  # the leader's fetch failed: try ourselves
            try:
                self.stats.misses += 1
                flight.data = whole = fetch()
                self.stats.ufs_bytes_read += len(whole)
            finally:
                with self._inflight_lock:
                    del self._inflight[key]
                    if cache and flight.data is not None:
                        # Readers of this block use these bytes until the store is done.
                        self._storing[key] = flight
                flight.done.set()
            if cache:
                self._writer.submit(self._store_then_forget, key, flight)
            return _cut(whole, offset, length)

    def readahead(
        self,
        file: int,
        version: int,
        first: int,
        last: int,
        block_size: int,
        fetch: Callable[[int, int], bytes],
    ) -> None:
        """Fetches and caches blocks ``first``..``last`` of a file version in the background,
        except those cached or already on their way. Consecutive wanted blocks go in runs of
        up to READAHEAD_RUN, one request each (``fetch(first_index, count)`` returns their
        bytes end to end): fewer round trips than a request per block, more streams in flight
        than one request for all."""
        with self.cache.ns.lock:
            blocks = self.cache.ns.state.blocks.get(file, {})
            cached = {idx for (v, idx) in blocks if v == version}
        runs: list[list[BlockKey]] = []
        with self._inflight_lock:
            busy = self._inflight.keys() | self._storing.keys() | self._queued
            for idx in range(first, last + 1):
                key = (file, version, idx)
                if idx in cached or key in busy:
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

    def _fetch_run(
        self, keys: list[BlockKey], block_size: int, fetch: Callable[[int, int], bytes]
    ) -> None:
        flights: dict[BlockKey, _Flight] = {}
        with self._inflight_lock:
            for key in keys:
                if key not in self._inflight and key not in self._storing:
                    flights[key] = self._inflight[key] = _Flight()
        with self.cache.ns.lock:
            for key in list(flights):
                if self.cache.info(key) is not None:  # cached since: nothing to fetch for it
                    with self._inflight_lock:
                        del self._inflight[key]
                    flights.pop(key).done.set()
        if not flights:
            return
        # Readers may have fetched some of the run's blocks themselves since it was queued:
        # only the span of the blocks still wanted is asked for.
        lo = min(key[2] for key in flights)
        hi = max(key[2] for key in flights)
        data = b""
        try:
            self.stats.misses += len(flights)
            start = time.perf_counter()
            data = fetch(lo, hi - lo + 1)
            log.debug(
                "readahead of blocks %d..%d of file %d: %d bytes in %.1f ms",
                lo, hi, keys[0][0], len(data), (time.perf_counter() - start) * 1e3,
            )  # fmt: skip
            self.stats.ufs_bytes_read += len(data)
        except Exception as exc:  # readahead is a guess: waiting readers fetch for themselves
            log.debug("readahead of %s.. failed: %s", keys[0], exc)
        finally:
            view = memoryview(data)
            with self._inflight_lock:
                for key, flight in flights.items():
                    del self._inflight[key]
                    i = key[2] - lo
                    block = bytes(view[i * block_size : (i + 1) * block_size])
                    if block:
                        flight.data = block
                        self._storing[key] = flight
            for flight in flights.values():
                flight.done.set()  # every waiter, before anything below can fail
            for key, flight in flights.items():
                if flight.data is not None:
                    try:
                        self._writer.submit(self._store_then_forget, key, flight)
                    except RuntimeError:  # closing: the bytes were handed over, not cached
                        with self._inflight_lock:
                            self._storing.pop(key, None)

    def _store_then_forget(self, key: BlockKey, flight: _Flight) -> None:
        try:
            assert flight.data is not None
            self.cache.store(key, flight.data)
        except Exception:  # a background store must never die silently
            log.exception("caching block %s failed", key)
        finally:
            with self._inflight_lock:
                if self._storing.get(key) is flight:
                    del self._storing[key]

    def drain(self) -> None:
        """Waits until every readahead is fetched and every block handed to the background
        writer is stored."""
        while True:
            with self._inflight_lock:
                pending = list(self._prefetches)
            if not pending:
                break
            wait(pending)
        self._writer.submit(lambda: None).result()
        while True:
            with self._inflight_lock:
                if not self._storing:
                    return
            time.sleep(0.001)

    def close(self) -> None:
        self._readahead.shutdown(wait=True, cancel_futures=True)
        self._writer.shutdown(wait=True)

    # -- storing and making room -------------------------------------------------------------

"""The fetch path of the block cache: misses fetched once, handed over, stored in the back.

However many readers miss the same block at the same time, one fetches it (single flight); the
others wait for its bytes. The block is handed to every reader first and written to a tier by
a background writer, during which readers of it are served from memory. Readahead queues
fetches of the blocks a sequential reader will want next.
"""

from __future__ import annotations

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
        self._readahead = ThreadPoolExecutor(4, thread_name_prefix="readahead")
        self._prefetches: set[Future[None]] = set()

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

    def prefetch(self, key: BlockKey, fetch: Callable[[], bytes]) -> None:
        """Fetches and caches ``key`` in the background unless it is cached or on its way
        (readahead for sequential readers)."""
        with self._inflight_lock:
            if key in self._inflight or key in self._storing:
                return
        with self.cache.ns.lock:
            if self.cache.info(key) is not None:
                return
        future = self._readahead.submit(self._prefetch, key, fetch)
        with self._inflight_lock:
            self._prefetches.add(future)
        future.add_done_callback(self._prefetch_done)

    def _prefetch_done(self, future: Future[None]) -> None:
        with self._inflight_lock:
            self._prefetches.discard(future)

    def _prefetch(self, key: BlockKey, fetch: Callable[[], bytes]) -> None:
        try:
            self.get(key, fetch, 0, 0)
        except Exception as exc:  # readahead is a guess: a failure only costs the guess
            log.debug("readahead of %s failed: %s", key, exc)

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

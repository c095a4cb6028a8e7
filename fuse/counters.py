"""The daemon's running totals in one snapshot, for `shoal stats` (cli/stats_cmd.py turns two
of them into per-second rates): FUSE requests by kind (fuse/opstats.py), the block cache's
counters, bytes from and to the stores, journal appends and fsyncs, prefetch and the storer.

Read without any lock: each figure is a plain integer some thread bumps, so a snapshot may
be a few increments apart between figures, nothing worse, and asking never slows the mount.
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine import metrics
from engine.engine import Engine
from fuse import opstats


def snapshot(engine: Engine) -> dict[str, Any]:
    """Totals since the daemon started; ``time`` (monotonic seconds) says when they were
    read, so rates are computed over the daemon's own interval."""
    out: dict[str, Any] = {
        "time": time.monotonic(),
        "pid": os.getpid(),
        "ops": opstats.snapshot(),
        "ufs_written_bytes": metrics.UFS_WRITTEN.value,
        "journal_appends": engine.journal.last_seq,
        "journal_fsyncs": engine.journal.fsyncs,
    }
    cache = engine.cache
    if cache is not None:
        stats = cache.stats
        out.update(
            cache_hits=stats.hits,
            cache_misses=stats.misses,
            evictions=stats.evictions,
            ufs_read_bytes=stats.ufs_bytes_read,
            prefetched_blocks=stats.prefetched_blocks,
            prefetched_bytes=stats.prefetched_bytes,
            stored_blocks=stats.stored_blocks,
            stores_dropped=stats.stores_dropped,
            store_queue=cache.fetcher.storer.queued,  # a level, not a total
        )
    return out

"""The block cache's counters of this process (not journaled): hits, misses, evictions, bytes
fetched, per tier where it matters. The fetch path and the cache both count into one."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    ufs_bytes_read: int = 0
    stores_dropped: int = 0  # fetched blocks not stored: the storer's queue was full
    stored_blocks: int = 0  # fetched blocks the storer wrote to a tier (`shoal stats`)
    flight_joins: int = 0  # misses that waited for another reader's fetch of the block
    tier_hits: dict[str, int] = field(default_factory=dict)
    tier_evictions: dict[str, int] = field(default_factory=dict)
    # Directory prefetch (engine/prefetch.py): blocks and bytes it stored, and blocks or
    # files it left out because no tier had free room below the watermark.
    prefetched_blocks: int = 0
    prefetched_bytes: int = 0
    prefetch_skipped_space: int = 0

    def count_prefetch(self, stored: int) -> None:
        """A prefetched block: ``stored`` bytes cached, or -1: left out (no free room)."""
        if stored < 0:
            self.prefetch_skipped_space += 1
        else:
            self.prefetched_blocks += 1
            self.prefetched_bytes += stored

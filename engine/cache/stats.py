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
    tier_hits: dict[str, int] = field(default_factory=dict)
    tier_evictions: dict[str, int] = field(default_factory=dict)

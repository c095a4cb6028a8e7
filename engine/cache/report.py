"""What `shoal report` and the Prometheus exporter show of the block cache: capacity, use and
block count per tier, this process's counters, and pending uploads that lost their bytes."""

from __future__ import annotations

from engine.cache.blockcache import BlockCache
from engine.cache.durability import describe, pending_without_bytes


def cache_report(cache: BlockCache) -> dict[str, object]:
    """Capacity, use and block count per tier, and this process's counters (hits per tier too:
    which tier serves an epoch when the dataset is larger than the highest one)."""
    stats = cache.stats
    with cache.ns.lock:
        counts = {t.name: 0 for t in cache.tiers}
        for blocks in cache.ns.state.blocks.values():
            for info in blocks.values():
                if info.tier in counts:
                    counts[info.tier] += 1
        tiers = [
            {"name": t.name, "capacity_bytes": t.quota, "used_bytes": cache.used[t.name],
             "blocks": counts[t.name], "paths": list(t.spec.paths),
             "hits": stats.tier_hits.get(t.name, 0)}
            for t in cache.tiers
        ]  # fmt: skip
        lost = [describe(cache.ns.state, u) for u in pending_without_bytes(cache.ns.state)]
    total = stats.hits + stats.misses
    return {
        "tiers": tiers,
        "cache_hits": stats.hits,
        "cache_misses": stats.misses,
        "hit_ratio": stats.hits / total if total else 0.0,
        "evictions": stats.evictions,
        "ufs_bytes_read": stats.ufs_bytes_read,
        "prefetched_blocks": stats.prefetched_blocks,
        "prefetched_bytes": stats.prefetched_bytes,
        "prefetch_skipped_space": stats.prefetch_skipped_space,
        "stores_dropped": stats.stores_dropped,
        "persists_without_bytes": lost,
    }

"""The block cache: tiers, block files, placement and eviction, misses fetched once, reconcile."""

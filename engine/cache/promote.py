"""A block read from a lower tier moved up to the highest one it may use (the CACHE_PROMOTE
read type, engine/iotypes.py)."""

from __future__ import annotations

from engine.cache.blockcache import BlockCache
from engine.cache.tiers import BlockKey
from engine.inode import PERSISTED


def promote(cache: BlockCache, key: BlockKey) -> bool:
    """Moves a block read from a lower tier to the highest one it may use (the
    CACHE_PROMOTE read type); False if it stays where it is. The copy is made outside the
    namespace lock (engine/cache/evicting.py)."""
    moving = _queue(cache, key)
    cache.run_evictions()  # also what making room queued when no tier took it
    if moving is None:
        return False
    info = cache.info(key)
    return info is not None and info.tier == moving


def _queue(cache: BlockCache, key: BlockKey) -> str | None:
    """Under the lock: the block detached and its move queued; the tier it goes to, if any."""
    with cache.ns.lock:
        cache.apply_accesses()
        info = cache.info(key)
        if info is None or key in cache.pending.moving:
            return None
        current = next(i for i, t in enumerate(cache.tiers) if t.name == info.tier)
        media = cache.media_of(key[0])
        node = cache.ns.tree.find(key[0])
        persisted = node is not None and bool(node.flags & PERSISTED)
        # Taken out of its tier's accounting first: making room above may push blocks down
        # into that tier, and this block must not be the one evicted to make room for them.
        source = cache.tiers[current].name
        cache.lru[source].pop(key, None)
        cache.used[source] -= info.length
        for i in range(current):
            tier = cache.tiers[i]
            if (media and tier.name not in media) or (not tier.spec.sync and not persisted):
                continue  # pinned elsewhere, or the only copy: never onto a volatile tier
            if cache.pending.busy(tier.name, key):
                continue  # its old file there is still to be deleted
            if info.length <= tier.quota and cache.make_room(i, info.length):
                cache.queue_move(key, info, current, i, give_back=True)
                return tier.name
        cache.lru[source][key] = info.length
        cache.used[source] += info.length
        return None

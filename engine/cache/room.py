"""Whether a file's new content could be staged in the cache: free space, and what could be
made free, over the durable tiers the file may use."""

from __future__ import annotations

from engine.cache.blockcache import BlockCache


def has_room_for(cache: BlockCache, file: int, nbytes: int) -> bool:
    """With the namespace lock held: whether ``nbytes`` of new blocks of ``file`` could be
    staged beside its current ones, counting free space and evictable and stale blocks over
    the durable tiers its media allow (new content of a cached write is not persisted: it is
    kept off volatile tiers). The file's own blocks count only if evictable: a rewrite keeps
    them until its new content is committed (engine/cache/staging.py). A check, not a
    reservation: concurrent stores may take the room first, and each block must also fit in
    one tier."""
    media = cache.media_of(file)
    tiers = [t for t in cache.tiers if (not media or t.name in media) and t.spec.sync]
    room = sum(max(0, t.quota - cache.used[t.name]) for t in tiers)
    for tier in tiers:
        if room >= nbytes:
            break
        for key, length in cache.lru[tier.name].items():
            if cache.evictable(key) is not False:
                room += length
                if room >= nbytes:
                    break
    return room >= nbytes

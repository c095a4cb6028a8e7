"""Giving back the RAM of volatile tiers (``sync = false``: MEM on /dev/shm) when the process
that holds a home stops: tmpfs pages outlive every process, so a daemon that unmounts (or a
command that ran offline) would otherwise leave its MEM tier behind until the machine reboots.

Each block still wanted (its file's current, persisted content) moves to the highest durable
tier with room, journaled as BlockMoved; one no durable tier takes is dropped, journaled as
BlockRemoved: its bytes are in its UFS. Either way the journal says where every block is, so a
crash half-way leaves a true state (each move copies before it journals, each drop journals
before it deletes; reconcile removes files left over). Blocks that are the only copy of their
content (not persisted, or of a file unlinked while open) are never on a volatile tier
(engine/cache/media.py), and are left alone if one is. Then the tier's directories, now
empty, are removed: only empty directories, never anything else that is there.

The copies are made outside the namespace lock, as eviction's are (engine/cache/evicting.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from engine.cache.blockcache import BlockCache
from engine.cache.tierclaim import shoal_made
from engine.cache.tiers import TIER_MARK, BlockKey, TierStore
from engine.inode import PERSISTED
from engine.state import BlockInfo

log = logging.getLogger(__name__)


@dataclass
class Released:
    moved: int = 0
    dropped: int = 0
    kept: int = 0  # the only copy of their content: stay where they are
    left: list[str] = field(default_factory=list)  # tier directories still holding blocks
    found: list[str] = field(default_factory=list)  # emptied and kept: Shoal did not make them


def release_volatile(cache: BlockCache) -> Released:
    """Empties every volatile tier of ``cache`` into its durable ones (or drops), and removes
    the volatile tiers' directories."""
    return _empty(cache, volatile_only=True)


def clear_tiers(cache: BlockCache) -> Released:
    """`shoal cache clear`: drops every block whose bytes are also in its UFS, from every tier,
    and removes the tiers' directories that are then empty. Blocks that are the only copy of
    their content (not yet persisted) are kept: clearing a cache never loses data."""
    return _empty(cache, volatile_only=False)


def _empty(cache: BlockCache, volatile_only: bool) -> Released:
    out = Released()
    for src, tier in enumerate(cache.tiers):
        if volatile_only and tier.spec.sync:
            continue
        with cache.ns.lock:
            keys = list(cache.lru[tier.name])
        for key in keys:
            _release_one(cache, key, src, out, move=volatile_only)
        tier.files.close()
        _remove_dirs(tier, out)
    if out.moved or out.dropped or out.kept:
        log.info(
            "cache tiers emptied: %d blocks moved to disk tiers, %d dropped, %d kept",
            out.moved, out.dropped, out.kept,
        )  # fmt: skip
    return out


def _release_one(cache: BlockCache, key: BlockKey, src: int, out: Released, *, move: bool) -> None:
    try:
        _decide(cache, key, src, out, move)
    finally:
        cache.run_evictions()  # the copies and deletions, outside the lock


def _decide(cache: BlockCache, key: BlockKey, src: int, out: Released, move: bool) -> None:
    with cache.ns.lock:
        info = cache.info(key)
        if info is None or info.tier != cache.tiers[src].name or key in cache.pending.moving:
            return  # collected, moved or dropped meanwhile
        node = cache.ns.tree.find(key[0])
        if node is None or node.version != key[1] or not node.flags & PERSISTED:
            out.kept += 1  # the only copy (or garbage, which a clean close collected)
            return
        if move and move_down(cache, key, info, src):
            out.moved += 1
        else:
            cache.drop(key, info, later=True)
            out.dropped += 1


def remove_empty_tiers(cache: BlockCache) -> None:
    """At a stop, each tier directory holding no block (its mark and empty folders at most)
    goes: the start made and marked it (engine/cache/tierclaim.py), the next makes it again.
    Else every start that cached nothing would leave one behind, in /dev/shm too."""
    for tier in cache.tiers:
        _remove_dirs(tier)


def _remove_dirs(tier: TierStore, out: Released | None = None) -> None:
    """Removes those of ``tier``'s directories that hold no block (their marks with them;
    one Shoal did not make is only emptied of its block folders: its owner chose its place,
    owner and attributes); says in ``out`` which are left, and why."""
    for root in tier.spec.paths:
        made = shoal_made(root)
        if not remove_empty_tree(root, TIER_MARK, keep_root=not made):
            if out is not None:
                out.left.append(root)
        elif made:
            tier.owned.discard(root)  # made again by a later block: taken again then
        elif out is not None and os.path.isdir(root):
            out.found.append(root)


def remove_empty_tree(root: str, mark: str | None = None, *, keep_root: bool = False) -> bool:
    """Removes ``root`` and the directories below it if none holds anything else (but a file
    named ``mark`` in ``root``: a tier directory's, which goes with it); True when ``root`` is
    gone (or never was), or, ``keep_root``, when it holds nothing but its mark. What cannot be
    looked into or removed (a directory this user may not read, a mount point) is left, and
    counts as holding something: a stop goes on."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return True
    except OSError as exc:
        if not isinstance(exc, NotADirectoryError):
            log.warning("cache tier directory %s left in place: %s", root, exc)
        return False
    empty = True
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            empty = remove_empty_tree(entry.path) and empty
        elif entry.name != mark:
            empty = False
    if not empty or keep_root:
        return empty
    try:
        if mark is not None and any(e.name == mark for e in entries):
            os.unlink(os.path.join(root, mark))
        os.rmdir(root)
    except OSError:  # a mount point, or filled meanwhile: left in place
        return False
    return True


def move_down(cache: BlockCache, key: BlockKey, info: BlockInfo, src: int) -> bool:
    """With the lock held: queues the block's move from tier ``src`` to the highest durable
    tier below it that its media allow and that has (or can make) room; False if none can.
    (A copy that then fails drops the block: its bytes are in its UFS.)"""
    media = cache.media_of(key[0])
    for i in range(src + 1, len(cache.tiers)):
        tier = cache.tiers[i]
        if tier.spec.sync and (not media or tier.name in media) and info.length <= tier.quota:
            if not cache.pending.busy(tier.name, key) and cache.make_room(i, info.length):
                source = cache.tiers[src].name
                if cache.lru[source].pop(key, None) is not None:
                    cache.used[source] -= info.length
                cache.queue_move(key, info, src, i, give_back=False)
                return True
    return False

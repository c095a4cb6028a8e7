"""Which tiers a block may be stored in: those its file is pinned to (its media), and only
durable ones (sync = true) while its content is in no UFS yet, the only copy of acknowledged
data that a volatile tier (MEM on /dev/shm) would lose at a reboot."""

from __future__ import annotations

from engine.cache.tiers import BlockKey, TierStore
from engine.errors import NoSpace
from engine.inode import PERSISTED
from engine.namespace import Namespace


def media_of(ns: Namespace, file: int) -> list[str] | None:
    """The tiers ``file`` is pinned to, or None: any tier."""
    node = ns.tree.find(file)
    return node.ext.media if node is not None and node.ext is not None else None


def tiers_for(
    ns: Namespace, tiers: list[TierStore], key: BlockKey, media: list[str] | None
) -> list[int]:
    """The tiers block ``key`` may be stored in, highest first: those its file is pinned
    to, and only durable ones while the file's content is not persisted."""
    node = ns.tree.find(key[0])
    if node is None or node.version != key[1] or node.flags & PERSISTED:
        # (stale bytes are turned away under the lock)
        return [i for i, t in enumerate(tiers) if not media or t.name in media]
    return durable_tiers(ns, tiers, key[0], media)


def durable_tiers(
    ns: Namespace, tiers: list[TierStore], file: int, media: list[str] | None
) -> list[int]:
    """The durable tiers (sync = true) ``file``'s media allow, highest first; raises
    NoSpace, naming why, if its media allow only volatile ones."""
    allowed = [i for i, t in enumerate(tiers) if not media or t.name in media]
    durable = [i for i in allowed if tiers[i].spec.sync]
    if allowed and not durable:
        names = ", ".join(tiers[i].name for i in allowed)
        node = ns.tree.find(file)
        path = ns.path_of(node) if node is not None else f"inode {file}"
        raise NoSpace(
            f"{path} is not in its UFS yet, so its blocks need a durable cache tier"
            f" (sync = true), and it may only use {names}" + (" (pinned)" if media else "")
        )
    return durable

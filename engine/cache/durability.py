"""Acknowledged data whose only copy is the cache, and whether its bytes are still there.

A file written MUST_CACHE, or ASYNC_THROUGH and not uploaded yet, exists nowhere but in its
cached blocks: the block cache keeps them on durable tiers only (engine/cache/blockcache.py),
but a disk can still lose them, or a tier directory be removed by hand. Such a file cannot be
fetched again, so a missing block is lost data, not a cache miss. These functions find it: the
engine at start-up (for its log), `shoal report` and `shoal fsck` (named checks).

A block counts as present when the block map lists it and it is not in ``lost``: blocks the
map lists whose files a reconciliation found missing or damaged without repairing (fsck
without --repair). After a repairing reconciliation (every start) they are out of the map.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import NamedTuple

from engine.cache.tiers import BlockKey
from engine.inode import COMPLETE, PERSISTED, S_IFMT, S_IFREG, Inode
from engine.state import State, block_size_of


class Unbacked(NamedTuple):
    """A file version the cache alone holds, with the blocks no tier has any more."""

    file: int
    version: int
    missing: list[int]  # block indices


def missing_blocks(state: State, node: Inode, lost: Collection[BlockKey] = ()) -> list[int]:
    """The indices of the blocks of ``node``'s current content that no tier holds."""
    bs = block_size_of(node)
    count = -(-node.size // bs) if bs else 0
    cached = state.blocks.get(node.id, {})
    return [
        idx
        for idx in range(count)
        if (node.version, idx) not in cached or (node.id, node.version, idx) in lost
    ]


def pending_without_bytes(state: State, lost: Collection[BlockKey] = ()) -> list[Unbacked]:
    """Pending persists (of the file's current version) that miss a block: the upload can
    never complete."""
    out = []
    for file, version in sorted(state.persists.items()):
        node = state.tree.find(file)
        if node is None or node.version != version:
            continue  # gone or superseded: the persister drops the request
        missing = missing_blocks(state, node, lost)
        if missing:
            out.append(Unbacked(file, version, missing))
    return out


def acknowledged_without_blocks(state: State, lost: Collection[BlockKey] = ()) -> list[Unbacked]:
    """Complete regular files below a mount whose content is not persisted (whether an upload
    is pending or not: MUST_CACHE) and that miss a block from every tier. (A file outside
    every mount has no data to lose: content needs a UFS.)"""
    out = []
    for node in _files_below_mounts(state):
        if node.mode & S_IFMT != S_IFREG or not node.flags & COMPLETE or node.flags & PERSISTED:
            continue
        missing = missing_blocks(state, node, lost)
        if missing:
            out.append(Unbacked(node.id, node.version, missing))
    return sorted(out)


def _files_below_mounts(state: State) -> Iterator[Inode]:
    for point in state.mounts:
        top = state.tree.find(point)
        stack = [top] if top is not None else []
        while stack:
            node = stack.pop()
            if node.children is None:
                yield node
                continue
            # A mount inside this one is walked from its own mount point.
            stack.extend(c for c in node.children.values() if c.id not in state.mounts)


def describe(state: State, item: Unbacked) -> str:
    """One line naming the file (its path while it exists) and what it lacks."""
    node = state.tree.find(item.file)
    where = state.tree.path_of(node) if node is not None else "(gone)"
    shown = ", ".join(str(i) for i in item.missing[:8])
    more = f" and {len(item.missing) - 8} more" if len(item.missing) > 8 else ""
    return (
        f"{where} (inode {item.file}, version {item.version}): block(s) {shown}{more}"
        " are in no cache tier, and the UFS does not have this content"
    )

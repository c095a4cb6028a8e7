"""What listings ask of the pending store moves (engine/storemove.py completes them): where a
renamed file's or directory's content still is in its store while its move is pending."""

from __future__ import annotations

from collections.abc import Callable

from engine.inode import Inode
from engine.state import Mount, State


def moving(state: State, node: Inode) -> bool:
    """Whether ``node`` or a directory above it (in its mount) was renamed and its store move
    is pending: its store path does not hold (all of) its content yet. Read under the lock."""
    moves, mounts = state.store_moves, state.mounts
    cur: Inode | None = node
    while moves and cur is not None and cur.id not in mounts:
        if cur.id in moves:
            return True
        cur = state.tree.find(cur.parent) if cur.parent != cur.id else None
    return False


def moved_away(
    state: State, mount_of: Callable[[Inode], tuple[Mount, str] | None], mount_id: int, rel: str
) -> list[str]:
    """The names in store directory ``rel`` of mount ``mount_id`` that are pending moves' old
    paths: content of a node renamed elsewhere, not new files. Read under the lock."""
    out = []
    for ino, (old, _fingerprint) in state.store_moves.items():
        parent, _slash, name = old.rpartition("/")
        node = state.tree.find(ino) if parent == rel else None
        where = mount_of(node) if node is not None else None
        if where is not None and where[0].id == mount_id:
            out.append(name)
    return out

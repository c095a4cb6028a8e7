"""Whether a file's store may hold a copy under its name: what a write through the store and a
namespace change that reaches the store first ask before they can overwrite or remove it."""

from __future__ import annotations

from engine.inode import PERSISTED, Inode
from engine.state import State


def store_may_hold(state: State, node: Inode) -> bool:
    """Whether the store may hold a copy of file ``node`` under its name: it is persisted,
    has a fingerprint (an older version, or a stale copy: Rename.stale, StoreCopy, a
    superseded upload), or has an upload pending (one may have landed)."""
    return bool(
        node.flags & PERSISTED
        or (node.ext is not None and node.ext.fingerprint)
        or node.id in state.persists
    )

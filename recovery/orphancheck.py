"""fsck's ``orphans`` check: files unlinked while open (engine/openfiles.py) are nameless
regular files whose blocks are their own; every start releases them all."""

from __future__ import annotations

from engine.inode import S_IFMT, S_IFREG
from engine.state import State


def check_orphans(state: State) -> list[str]:
    out = []
    for ino, node in sorted(state.orphans.items()):
        if node.id != ino:
            out.append(f"orphan {ino} holds inode {node.id}")
        if state.tree.find(ino) is not None:
            out.append(f"orphan {ino} still has a name in the tree")
        if node.mode & S_IFMT != S_IFREG:
            out.append(f"orphan {ino} is not a regular file")
        if node.ext is not None and node.ext.links:
            out.append(f"orphan {ino} still has hard links")
        if ino in state.persists:
            out.append(f"orphan {ino} has an upload pending: nothing of it may reach a store")
        for version, _index in state.blocks.get(ino, {}):
            if version != node.version:
                out.append(f"orphan {ino}: a cached block of version {version}, not its own")
    return out

"""Which file may live on without a name: the rule apply and admission share for a Delete or
Rename that leaves a file an orphan (a file unlinked while open, engine/openfiles.py)."""

from __future__ import annotations

from engine.inode import S_IFMT, S_IFREG, Inode


def orphan_problem(node: Inode | None, moved: Inode | None = None) -> str | None:
    """Why ``node`` cannot become an orphan as it loses a name (replaced by ``moved``, for a
    Rename); None when it can: only a regular file losing its last name (a hard-linked file
    keeps living by its other names)."""
    if node is None or node is moved:
        return "a rename that replaces no other file leaves no orphan"
    if node.mode & S_IFMT != S_IFREG:
        return f"inode {node.id} is not a regular file: it cannot live on as an orphan"
    if node.nlink != 1:
        return f"inode {node.id} keeps other names: it is no orphan"
    return None

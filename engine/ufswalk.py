"""Walks of a namespace subtree over its UFS: removing it, and preparing a directory's rename
(object stores have no directory rename: its files are moved one at a time after the entry,
engine/storemove.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from engine.inode import Inode
from engine.state import PERSISTED
from ufs.base import UnderFS
from ufs.base import join as ufs_join
from ufs.errors import UfsIsADirectory, UfsNotFound


def walk(node: Inode, rel: str) -> Iterator[tuple[Inode, str]]:
    """(node, UFS path) of a subtree, children before their directory."""
    for name, child in sorted((node.children or {}).items()):
        yield from walk(child, ufs_join(rel, name))
    yield node, rel


def other_names(node: Inode, rel: str) -> Iterator[tuple[Inode, str]]:
    """(file, UFS path) of each name below ``node`` that is not its file's own: a hard-linked
    file's other names, whose store copies only mirror the own name's (engine/links.py)."""
    for name, child in sorted((node.children or {}).items()):
        path = ufs_join(rel, name)
        if child.children is not None:
            yield from other_names(child, path)
        elif (child.parent, child.name) != (node.id, name):
            yield child, path


def _persisted(node: Inode) -> bool:
    return bool(node.flags & PERSISTED)


def remove_tree(
    ufs: UnderFS, node: Inode, rel: str, in_ufs: Callable[[Inode], bool] = _persisted
) -> None:
    """Removes a subtree's files that ``in_ufs`` says the UFS may hold (by default the
    persisted ones) and its directories from the UFS."""
    for item, path in walk(node, rel):
        try:
            if item.children is not None:
                ufs.rmdir(path)
            elif item.flags & PERSISTED:
                ufs.delete(path)
            elif in_ufs(item):
                try:
                    ufs.delete(path)
                except UfsIsADirectory:
                    pass  # not a copy of this file, which may never have reached the UFS
        except UfsNotFound:
            pass  # already gone from the UFS: the goal is reached


def clear_tree(
    ufs: UnderFS, node: Inode, src: str, dst: str, in_ufs: Callable[[Inode], bool] = _persisted
) -> bool:
    """A directory rename's part on the UFS before it is journaled: any copy ``in_ufs`` says
    the UFS may hold of a file not persisted is stale (an older version, or an upload whose
    Persisted was never journaled) and is removed, not moved: moved ahead of the entry, a kill
    would leave superseded content under the new name (its current content reaches the new
    name by its pending upload). The persisted files and the directories are moved only after
    the entry (engine/storemove.py); here the store is only asked whether it answers (the
    directory looked at) and takes changes (``dst``'s parent made, the move's first step), so
    that a store that is down fails the rename before anything is journaled. True: the
    directory's content is to move after the entry."""
    try:
        ufs.stat(src)
    except UfsNotFound:
        pass  # never made in the store (or removed there): nothing of it to move but files
    ufs.mkdir(dst.rpartition("/")[0])
    stale = [
        path
        for item, path in walk(node, src)
        if item.children is None and not item.flags & PERSISTED and in_ufs(item)
    ]
    # Other names' mirrors go first too, as an unlink of such a name does: their content is
    # the own name's, moved (or not) on its own, and mirrored at the new paths after the
    # entry; a kill before it leaves those names without a mirror, never a copy at a path
    # the namespace has left.
    stale += [path for _item, path in other_names(node, src)]
    for path in stale:
        try:
            ufs.delete(path)
        except (UfsNotFound, UfsIsADirectory):
            pass  # not there, or not a copy of this file
    return True

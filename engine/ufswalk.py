"""Walks of a namespace subtree over its UFS: removing it, and renaming a directory on a store
that has no directory rename (object stores), one file at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from engine.inode import Inode
from engine.state import PERSISTED
from ufs.base import UfsAttrs, UnderFS
from ufs.base import join as ufs_join
from ufs.errors import UfsIsADirectory, UfsNotFound


def walk(node: Inode, rel: str) -> Iterator[tuple[Inode, str]]:
    """(node, UFS path) of a subtree, children before their directory."""
    for name, child in sorted((node.children or {}).items()):
        yield from walk(child, ufs_join(rel, name))
    yield node, rel


def _attrs(directory: Inode) -> UfsAttrs:
    """A directory made anew by a move keeps its owner and mode in the store."""
    return UfsAttrs(directory.mode & 0o7777, directory.uid, directory.gid)


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


def move_tree(
    ufs: UnderFS, node: Inode, src: str, dst: str, in_ufs: Callable[[Inode], bool] = _persisted
) -> None:
    """A directory rename on the UFS: directories made, persisted files renamed one by one,
    then the old directories removed (object stores have no directory rename). Any other copy
    ``in_ufs`` says the UFS may hold is stale (an older version, or an upload whose Persisted
    was never journaled) and is removed, not moved: moved ahead of the journal entry, a kill
    would leave superseded content under the new name. The current content reaches the new
    name later by its pending upload."""
    ufs.mkdir(dst, _attrs(node))
    for item, path in walk(node, src):
        target = dst + path[len(src) :]
        if item.children is not None:
            ufs.mkdir(target, _attrs(item))
        elif item.flags & PERSISTED:
            ufs.rename(path, target)
        elif in_ufs(item):
            try:
                ufs.delete(path)
            except (UfsNotFound, UfsIsADirectory):
                pass  # not there, or not a copy of this file
    for item, path in walk(node, src):
        if item.children is not None:
            try:
                ufs.rmdir(path)
            except UfsNotFound:
                pass

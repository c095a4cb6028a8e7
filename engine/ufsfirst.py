"""Namespace changes that reach the UFS before the journal: mkdir, delete, rename.

Below a mount, a change is carried out on the UFS first and journaled only once the UFS has it:
a failure (store down, access denied, disk full) leaves the namespace and the journal as they
were. A crash between the two leaves the UFS one step ahead; the next sync of that directory
reconciles it. Outside every mount the changes are the namespace's own.
"""

from __future__ import annotations

from engine.errors import (
    AlreadyExists,
    Busy,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    NotFound,
)
from engine.inode import Inode
from engine.mounts import ufs_errors
from engine.names import check_name
from engine.namespace import Namespace
from engine.placement import Placement
from engine.state import PERSISTED
from engine.ufswalk import move_tree, remove_tree


class UfsFirstChanges:
    def __init__(self, ns: Namespace, placement: Placement) -> None:
        self.ns = ns
        self.placement = placement

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        parent, name, ufs = self.placement.target(path)
        if name in parent.children:  # type: ignore[operator]
            raise AlreadyExists(f"{path} already exists")
        if ufs is not None:
            _mount, connector, rel = ufs
            with ufs_errors():
                connector.mkdir(rel)
        return self.ns.mkdir_in(parent.id, name, mode, uid, gid)

    def makedirs(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        """mkdir -p: every missing level, each through its UFS if below a mount."""
        node = self.ns.tree.root
        built = ""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        for part in parts:
            check_name(part)  # all first: a bad last name must not leave half the levels made
        for part in parts:
            built += "/" + part
            try:
                node = self.placement.sync.lookup(built)
            except NotFound:
                node = self.mkdir(built, mode, uid, gid)
        return node

    def delete(self, path: str, *, recursive: bool = False, directory: bool | None = None) -> None:
        """Removes ``path``; ``directory`` True only a directory (rmdir), False only a
        non-directory (unlink), None either."""
        parent, name, ufs = self.placement.target(path)
        node = parent.children.get(name)  # type: ignore[union-attr]
        if node is None:
            raise NotFound(f"{path} does not exist")
        if directory is True and node.children is None:
            raise NotADirectory(f"{path} is not a directory")
        if directory is False and node.children is not None:
            raise IsADirectory(f"{path} is a directory")
        if ufs is not None:
            if node.children and not recursive:
                raise NotEmpty(f"{path} is a directory that is not empty")
            if self.ns.holds_mount(node):
                raise Busy(f"{path} is or contains a mount point; unmount it first")
            _mount, connector, rel = ufs
            with ufs_errors():
                remove_tree(connector, node, rel)
        self.ns.delete(path, recursive=recursive)

    def rename(self, src: str, dst: str, *, noreplace: bool = False) -> None:
        src_parent, src_name, src_ufs = self.placement.target(src)
        dst_parent, dst_name, dst_ufs = self.placement.target(dst)
        node = src_parent.children.get(src_name)  # type: ignore[union-attr]
        if node is None:
            raise NotFound(f"{src} does not exist")
        if src_ufs is None and dst_ufs is None:
            self.ns.rename(src, dst, noreplace=noreplace)
            return
        if src_ufs is None or dst_ufs is None or src_ufs[0].id != dst_ufs[0].id:
            raise InvalidArgument(f"{src} and {dst} are on different stores: copy, then delete")
        existing = dst_parent.children.get(dst_name)  # type: ignore[union-attr]
        if existing is not None and noreplace:
            raise AlreadyExists(f"{dst} already exists")
        if node.id in self.ns.state.mounts or (existing and existing.id in self.ns.state.mounts):
            raise Busy(f"{src} or {dst} is a mount point")
        _mount, connector, a = src_ufs
        b = dst_ufs[2]
        with ufs_errors():
            if node.children is None:
                if node.flags & PERSISTED:
                    connector.rename(a, b)
            else:
                if existing is not None and existing.children:
                    raise NotEmpty(f"{dst} is a directory that is not empty")
                move_tree(connector, node, a, b)
        self.ns.rename(src, dst, noreplace=noreplace)

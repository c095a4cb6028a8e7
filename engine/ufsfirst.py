"""Namespace changes that reach the UFS before the journal: mkdir, delete, rename.

Below a mount, a change is carried out on the UFS first and journaled only once the UFS has it:
a failure (store down, access denied, disk full) leaves the namespace and the journal as they
were. A crash between the two leaves the UFS one step ahead; the next sync of that directory
reconciles it. Outside every mount the changes are the namespace's own.

A delete or rename of files whose upload may be under way (engine/persister.py) first holds
them: the upload is called off or has landed before the UFS is changed, and none starts until
the change is journaled, so a deleted file's upload can never land after the delete. A file
that is not persisted may still have a copy in the UFS — an older version, or an upload that
landed just before a crash, before its Persisted was journaled — so its path there is removed
too whenever it may hold one.

Only a persisted file (its current content is the UFS's copy) is moved by a rename. Any other
copy is stale: moved first and journaled after, a kill between the two would leave superseded
content under a name the file never had, which the next listing would show; so it is removed,
and the current content reaches the UFS later by its pending upload, under the journaled name.
For the same reason a rename over a file removes the replaced file's copy when the moved file
brings none of its own to write over it: left behind, it would be read back as the moved
file's content (or come back once that one is deleted). Kill points, the UFS step done and the
entry not durable: a removed stale copy leaves the file as it was (its content is in the
cache, its upload still pending); a moved persisted file and a removed replaced file are the
UFS one step ahead, which the next listing of the directory follows.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

from engine.errors import (
    AlreadyExists,
    Busy,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    NotFound,
    ShoalError,
)
from engine.inode import Inode
from engine.mounts import ufs_errors
from engine.names import check_name
from engine.namespace import Namespace
from engine.persister import Persister
from engine.placement import Placement
from engine.state import PERSISTED
from engine.ufswalk import move_tree, remove_tree
from ufs.base import UfsAttrs, UnderFS
from ufs.errors import UfsError, UfsIsADirectory, UfsNotFound

log = logging.getLogger(__name__)


class UfsFirstChanges:
    def __init__(self, ns: Namespace, placement: Placement) -> None:
        self.ns = ns
        self.placement = placement
        self.persister: Persister | None = None

    def holding(self, *nodes: Inode | None) -> AbstractContextManager[None]:
        """Keeps the persister off the files at and below ``nodes`` for a change to them
        (engine/persister.py, ``Persister.hold``)."""
        ids = [n.id for n in nodes if n is not None]
        if self.persister is None or not ids:
            return nullcontext()
        return self.persister.hold(ids)

    def holding_path(self, path: str) -> AbstractContextManager[None]:
        """``holding`` the node at ``path``, if there is one (a file about to be rewritten)."""
        if self.persister is None:
            return nullcontext()
        try:
            node = self.ns.lookup(path)
        except ShoalError:  # no such file yet (or no such path): the write reports it
            return nullcontext()
        return self.holding(node) if node.children is None else nullcontext()

    def may_be_in_ufs(self, node: Inode) -> bool:
        """Whether the UFS may hold a copy of file ``node``: it is persisted, was once (an
        older version is there), or has an upload pending (one may have landed)."""
        return bool(
            node.flags & PERSISTED
            or (node.ext is not None and node.ext.fingerprint)
            or node.id in self.ns.state.persists
        )

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        parent, name, ufs = self.placement.target(path)
        if name in parent.children:  # type: ignore[operator]
            raise AlreadyExists(f"{path} already exists")
        if ufs is not None:
            _mount, connector, rel = ufs
            with ufs_errors():
                connector.mkdir(rel, UfsAttrs(mode, uid, gid))
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
            with self.holding(node):
                with ufs_errors():
                    remove_tree(connector, node, rel, self.may_be_in_ufs)
                self.ns.delete(path, recursive=recursive)
            return
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
        if existing is node:
            return  # a name renamed onto itself: nothing changes
        _check_kinds(node, existing, dst)
        _mount, connector, a = src_ufs
        b = dst_ufs[2]
        with self.holding(node, existing):
            replaced = False
            with ufs_errors():
                if node.children is None:
                    replaced = self._rename_file(connector, node, existing, a, b)
                else:
                    if existing is not None and existing.children:
                        raise NotEmpty(f"{dst} is a directory that is not empty")
                    move_tree(connector, node, a, b, self.may_be_in_ufs)
            self.ns.rename(src, dst, noreplace=noreplace)
            if replaced:  # still held: the moved file's upload cannot start before this
                _remove_replaced(connector, b)

    def _rename_file(
        self, connector: UnderFS, node: Inode, existing: Inode | None, a: str, b: str
    ) -> bool:
        """The UFS's part of a file rename before it is journaled; True if the replaced file's
        copy at ``b`` is to be removed after it is."""
        if node.flags & PERSISTED:
            connector.rename(a, b)  # the current content, over whatever ``b`` held
            return False
        if self.may_be_in_ufs(node):
            _remove_file(connector, a)  # stale: its pending upload writes it anew at ``b``
        if existing is None:
            return False
        # Whatever ``b`` holds is the replaced file's, or stale: nothing of the moved file.
        if node.id in self.ns.state.persists:
            # The moved file's pending upload writes over it, and until then the listing does
            # not take it for the file's content (the file holds content the UFS lacks): it
            # may wait until the rename is journaled, so a kill before leaves ``b`` whole.
            return True
        # Nothing would ever write over it, and a file never committed would take it for its
        # content at the next listing: it goes first.
        _remove_file(connector, b)
        return False


def _check_kinds(node: Inode, existing: Inode | None, dst: str) -> None:
    """The namespace's refusals of a rename over a name of the other kind, made before the UFS
    is touched (the namespace checks them again when it journals)."""
    if existing is None:
        return
    if existing.children is not None and node.children is None:
        raise IsADirectory(f"{dst} is a directory")
    if existing.children is None and node.children is not None:
        raise NotADirectory(f"{dst} is not a directory")


def _remove_replaced(connector: UnderFS, path: str) -> None:
    """After the rename is journaled: a failure does not undo it (and is not the caller's:
    the moved file's pending upload writes over what is left)."""
    try:
        _remove_file(connector, path)
    except UfsError as exc:
        log.warning("%s: the replaced file's copy stays until an upload replaces it: %s", path, exc)


def _remove_file(connector: UnderFS, path: str) -> None:
    try:
        connector.delete(path)
    except (UfsNotFound, UfsIsADirectory):
        pass  # nothing there, or not a copy of a file (a directory of the UFS's own)

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
The persisted content itself (a file's, or every one below a directory) is moved only after
the Rename, which records the move as pending (Rename.store_from), and a StoreMoved ends it
(engine/storemove.py): a kill between the store step and the entry can no longer leave the
journal naming a path the store has left. Before the entry the store is only asked what
the move needs (the content is there, the destination's directory can be made): a store that
is down or refuses changes fails the rename cleanly, nothing journaled. One that fails after
the entry leaves the rename done and its move pending, completed once the store answers (at
the next listing of the mount, rename or delete of it, or start).

A rename of a file not persisted over another leaves the replaced file's copy in the store
under the new name. It is removed only once the rename is journaled: removed before, a kill
between the two would lose the replaced file, acknowledged, to a rename never acknowledged
(the journal still names it, its store no longer has it). The Rename entry records that copy
on the moved file (Rename.stale: the file takes its fingerprint, which for a file not
persisted means the store may hold an older copy under its name), so no crash separates the
new name from the knowledge: the next listing does not take the copy for the moved file's
content (engine/sync.py), and its next delete or rename removes it even if the removal after
the entry failed or a kill cut it. Kill points, the UFS step done and the entry not durable: a
removed stale copy of the moved file leaves it as it was (its content in the cache, its upload
still pending). A persisted file is never moved before its entry: a kill after the entry
leaves its move pending, which the next start completes.
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
from engine.storehold import store_may_hold
from engine.storemove import StoreMoves
from engine.ufswalk import clear_tree, other_names, remove_tree
from ufs.base import UfsAttrs, UnderFS
from ufs.errors import UfsError, UfsIsADirectory, UfsNotFound

log = logging.getLogger(__name__)


class UfsFirstChanges:
    def __init__(self, ns: Namespace, placement: Placement) -> None:
        self.ns = ns
        self.placement = placement
        self.persister: Persister | None = None
        self.moves = StoreMoves(ns, placement.sync, placement.mounts)
        self.moves.holding = self.holding
        placement.check_free = self.moves.check_free
        placement.sync.settle_moves = self.moves.settle_quietly

    def holding(self, *nodes: Inode | None) -> AbstractContextManager[None]:
        """Keeps the persister off the files at and below ``nodes`` for a change to them
        (engine/persister.py, ``Persister.hold``)."""
        ids = [n.id for n in nodes if n is not None]
        if self.persister is None or not ids:
            return nullcontext()
        return self.persister.hold(ids)

    def uploading(self, node: Inode) -> bool:
        """Whether ``node``'s upload is under way (a change to it must ``hold`` it)."""
        return self.persister is not None and self.persister.uploading(node.id)

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
        return store_may_hold(self.ns.state, node)

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        parent, name, ufs = self.placement.target(path)
        if name in parent.children:  # type: ignore[operator]
            raise AlreadyExists(f"{path} already exists")
        if ufs is not None:
            self.placement.check_storable(path, is_dir=True)
            mount, connector, rel = ufs
            self.placement.clear(mount, rel)
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
        self.placement.check_storable("/" + "/".join(parts), is_dir=True)
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
            mount, connector, rel = ufs
            with self.holding(node):
                self.moves.settle(below=[node], force=True)  # their content where it is named
                if node.children is not None or self.may_be_in_ufs(node):
                    self.placement.clear(mount, rel)
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
        if node.children is None:
            self.placement.check_storable(dst, is_dir=False)
        else:
            self.placement.check_moved_tree(node, dst_ufs)
        mount, connector, a = src_ufs
        b = dst_ufs[2]
        # A hard link's other name: its store copy only mirrors the file's own name's.
        own_name = (node.parent, node.name) == (src_parent.id, src_name)
        other_name = node.children is None and not own_name
        self.moves.ready(node, existing)  # their content is where their names say
        self.placement.clear(mount, b)  # nothing is moved onto, nor removed at, another's content
        with self.holding(node, existing):
            with ufs_errors():
                if other_name:
                    # Its copy goes first, as an unlink of that name does: a kill before the
                    # entry leaves the name without a mirror, never a copy the store shows
                    # as a file of its own under a name that is gone.
                    _remove_file(connector, a)
                    moving = False
                elif node.children is None:
                    moving = self._rename_file(connector, node, a, b)
                else:
                    if existing is not None and existing.children:
                        raise NotEmpty(f"{dst} is a directory that is not empty")
                    moving = clear_tree(connector, node, a, b, self.may_be_in_ufs)
            stale = self.ns.rename(
                src, dst, noreplace=noreplace, below_mount=True, store_from=a if moving else None
            )
            if stale is not None or moving or other_name or node.children is not None:
                # The store is changed below on the entry's word: it must survive any crash.
                self.ns.gate.sync()
            if stale is not None:  # still held: the moved file's upload cannot start before this
                _remove_stale(connector, b)
            if moving:  # journaled: a failure from here on leaves the move pending, not undone
                self.moves.settle_quietly(below=[node])
            if other_name:
                self._mirror_at(connector, node, b)
            elif node.children is not None:
                self._mirror_below(connector, node, b)

    def _rename_file(self, connector: UnderFS, node: Inode, a: str, b: str) -> bool:
        """The UFS's part of a file rename before it is journaled: a stale copy removed, or,
        for a persisted file, whether the store can take the move (its content is at ``a``,
        ``b``'s directory can be made); True if the content is to move after the entry.
        Nothing at ``b`` is touched: the moved content goes over it after the entry, the
        replaced file's copy is removed then (``_remove_stale``)."""
        if node.flags & PERSISTED:
            connector.stat(a)  # gone from the store: refused (NotFound), as the move would be
            connector.mkdir(b.rpartition("/")[0])  # the move's first step: refused if down
            return True
        if self.may_be_in_ufs(node):
            _remove_file(connector, a)  # stale: its pending upload writes it anew at ``b``
        return False

    def _mirror_below(self, connector: UnderFS, node: Inode, b: str) -> None:
        """After directory ``node`` moved to ``b``: the hard-linked files' other names below
        it mirror their content at their new paths (clear_tree removed the old copies). A
        file whose own name is elsewhere has a move pending from such a name (not below the
        directory, so not completed with it): completed first, nothing of it is at that path."""
        with self.ns.lock:  # a consistent look at the tree, as every walk of it
            names = list(other_names(node, b))
        ids = {item.id for item, _path in names}
        try:
            self.moves.settle(only=lambda ino, _old: ino in ids)
        except ShoalError as exc:
            log.warning("pending store moves stay pending: %s", exc)
        for item, path in names:
            self._mirror_at(connector, item, path)

    def _mirror_at(self, connector: UnderFS, node: Inode, b: str) -> None:
        """After an other name of linked file ``node`` was renamed to ``b`` (journaled: ``b``
        may hold the replaced file's copy until then): the file's content under it in the
        store, linked or copied from its own name's. A file not persisted gets it when its
        upload lands (engine/links.py's ``mirror_names``); a failure leaves the copy stale,
        as one there does."""
        with self.ns.lock:
            own = self.placement.sync.mount_of(node) if node.flags & PERSISTED else None
        if own is None:
            return
        try:
            connector.link(own[1], b)
        except UfsError as exc:
            log.warning("%s: the store's copy under this other name is stale: %s", b, exc)


def _check_kinds(node: Inode, existing: Inode | None, dst: str) -> None:
    """The namespace's refusals of a rename over a name of the other kind, made before the UFS
    is touched (the namespace checks them again when it journals)."""
    if existing is None:
        return
    if existing.children is not None and node.children is None:
        raise IsADirectory(f"{dst} is a directory")
    if existing.children is None and node.children is not None:
        raise NotADirectory(f"{dst} is not a directory")


def _remove_stale(connector: UnderFS, path: str) -> None:
    """After the rename is journaled: a failure does not undo it, and is not the caller's. The
    journal has the copy recorded on the moved file (Rename.stale), whose next delete or rename
    removes it, and whose pending upload, if any, writes over it."""
    try:
        _remove_file(connector, path)
    except UfsError as exc:
        log.warning("%s: the replaced file's copy stays until the file there is deleted,"
                    " renamed or uploaded: %s", path, exc)  # fmt: skip


def _remove_file(connector: UnderFS, path: str) -> None:
    try:
        connector.delete(path)
    except (UfsNotFound, UfsIsADirectory):
        pass  # nothing there, or not a copy of a file (a directory of the UFS's own)

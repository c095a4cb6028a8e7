"""Namespace operations: each checks the caller's request against the state (names, types,
emptiness, read-only mounts), builds an entry and proposes it to the commit gate
(engine/commit.py) under the gate's lock, then waits outside the lock until it is durable.

A mutation is visible to readers between apply and durability; it is acknowledged to its caller
only after.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from engine.commit import CommitGate
from engine.errors import (
    AlreadyExists,
    Busy,
    InvalidArgument,
    InvalidName,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    NotFound,
    NotPermitted,
    ReadOnly,
)
from engine.inode import PERSISTED, ROOT_ID, S_IFMT, S_IFREG, Inode
from engine.names import check_name, name_bytes, parent_and_name, split_path
from engine.opencounts import OpenCounts
from journal import entries as E

log = logging.getLogger(__name__)


class Namespace:
    def __init__(self, gate: CommitGate) -> None:
        self.gate = gate
        self.state = gate.state
        self.tree = gate.state.tree
        self.lock = gate.lock
        self.open_files = OpenCounts()  # reported by the frontend (engine/openfiles.py)

    # -- reading -----------------------------------------------------------------------------

    def lookup(self, path: str) -> Inode:
        with self.lock:
            return self.tree.resolve(split_path(path))

    def listdir(self, path: str) -> list[Inode]:
        with self.lock:
            node = self.tree.resolve(split_path(path))
            if node.children is None:
                raise NotADirectory(f"{path} is not a directory")
            return [node.children[name] for name in sorted(node.children)]

    def entries(self, path: str) -> list[tuple[str, Inode]]:
        """``listdir`` with each entry's name: a hard-linked file's ``name`` is only its own."""
        with self.lock:
            node = self.tree.resolve(split_path(path))
            if node.children is None:
                raise NotADirectory(f"{path} is not a directory")
            return sorted(node.children.items())

    def path_of(self, node: Inode) -> str:
        with self.lock:
            return self.tree.path_of(node)

    # -- validation helpers ------------------------------------------------------------------

    def check_writable(self, node: Inode) -> None:
        mounts = self.state.mounts
        if not mounts:
            return
        cur = node
        while True:
            m = mounts.get(cur.id)
            if m is not None:
                if m.readonly:
                    raise ReadOnly(f"{self.tree.path_of(node)} is on a read-only mount")
                return
            if cur.id == ROOT_ID:
                return
            cur = self.tree.table[cur.parent]  # type: ignore[assignment]

    def on_read_only_mount(self, node: Inode) -> bool:
        try:
            self.check_writable(node)
        except ReadOnly:
            return True
        return False

    def _dir(self, parts: list[str]) -> Inode:
        node = self.tree.resolve(parts)
        if node.children is None:
            raise NotADirectory("/" + "/".join(parts) + " is not a directory")
        return node

    def _free_name(self, parent: Inode, name: str) -> None:
        check_name(name)
        if name in parent.children:  # type: ignore[operator]
            raise AlreadyExists(f"{self.tree.path_of(parent).rstrip('/')}/{name} already exists")

    # -- namespace mutations -----------------------------------------------------------------

    def mkdir(
        self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0, parents: bool = False
    ) -> Inode:
        parts = split_path(path)
        for name in parts:
            # All names first: a bad one after parents -p already made would half-apply mkdir.
            check_name(name)
        if not parts:
            if parents:
                return self.tree.root
            raise AlreadyExists("/ already exists")
        seq = 0
        # -p's entries reach the journal's writer in one hand-off: one write and fsync, and the
        # same log in every run (the crash state machine replays examples by their log).
        with self.lock, self.gate.batched():
            node = self.tree.root
            for i, name in enumerate(parts):
                nxt = node.children.get(name)  # type: ignore[union-attr]
                last = i == len(parts) - 1
                if nxt is not None:
                    if nxt.children is None:
                        raise NotADirectory("/" + "/".join(parts[: i + 1]) + " is not a directory")
                    if last and not parents:
                        raise AlreadyExists(f"{path} already exists")
                    node = nxt
                    continue
                if not last and not parents:
                    raise NotFound("/" + "/".join(parts[: i + 1]) + " does not exist")
                seq, node = self._mkdir_locked(node, name, mode, uid, gid)
        if seq:
            self.gate.durable(seq)
        return node

    def mkdir_in(self, parent_id: int, name: str, mode: int, uid: int, gid: int) -> Inode:
        with self.lock:
            seq, node = self._mkdir_locked(self._dir_by_id(parent_id), name, mode, uid, gid)
        self.gate.durable(seq)
        return node

    def _mkdir_locked(
        self, parent: Inode, name: str, mode: int, uid: int, gid: int
    ) -> tuple[int, Inode]:
        return self._new_locked(E.MkDir, parent, name, mode, uid, gid)

    def create(self, path: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Inode:
        parents, name = parent_and_name(path)
        with self.lock:
            seq, node = self._create_locked(self._dir(parents), name, mode, uid, gid)
        self.gate.durable(seq)
        return node

    def create_in(
        self, parent_id: int, name: str, mode: int, uid: int, gid: int, rdev: int = 0
    ) -> Inode:
        """A file; a special one where ``mode``'s type bits say so (engine/links.py)."""
        with self.lock:
            seq, node = self.create_locked(self._dir_by_id(parent_id), name, mode, uid, gid, rdev)
        self.gate.durable(seq)
        return node

    def create_now(
        self, parent_id: int, name: str, mode: int, uid: int, gid: int
    ) -> tuple[int, Inode] | None:
        """``create_in`` for the event loop: (the CreateFile's sequence number, for the caller
        to wait for, the file); None, nothing done, if the lock is taken (a thread waits)."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            return self.create_locked(self._dir_by_id(parent_id), name, mode, uid, gid, 0)
        finally:
            self.lock.release()

    def _create_locked(
        self, parent: Inode, name: str, mode: int, uid: int, gid: int
    ) -> tuple[int, Inode]:
        return self._new_locked(E.CreateFile, parent, name, mode, uid, gid)

    def create_locked(
        self, parent: Inode, name: str, mode: int, uid: int, gid: int, rdev: int
    ) -> tuple[int, Inode]:
        """With the lock held: a file, of ``mode``'s type (a special file) if it has one."""
        self.check_new_name(parent, name)
        entry = E.CreateFile(
            self.tree.next_id, parent.id, name, mode, uid, gid, time.time_ns(), rdev
        )
        seq = self.gate.commit(entry)
        return seq, self.tree.get(entry.id)

    def check_new_name(self, parent: Inode, name: str) -> None:
        """With the lock held: ``name`` may be made in ``parent``."""
        self._free_name(parent, name)
        self.check_writable(parent)

    def _new_locked(
        self,
        kind: type[E.MkDir] | type[E.CreateFile],
        parent: Inode, name: str, mode: int, uid: int, gid: int,
    ) -> tuple[int, Inode]:  # fmt: skip
        self.check_new_name(parent, name)
        entry = kind(self.tree.next_id, parent.id, name, mode, uid, gid, time.time_ns())
        seq = self.gate.commit(entry)
        return seq, self.tree.get(entry.id)

    def check_link(self, node: Inode, parent: Inode, name: str) -> None:
        """With the lock held: ``name`` in ``parent`` may become another name of ``node``:
        EINVAL (the name), EROFS, EEXIST, then EPERM for a directory, ENOENT for an inode
        that is gone."""
        if self.tree.find(node.id) is not node:
            raise NotFound(f"inode {node.id} does not exist")
        self.check_new_name(parent, name)
        if node.children is not None:
            raise NotPermitted(f"{self.tree.path_of(node)} is a directory: it has one name")

    def link_in(self, ino: int, parent_id: int, name: str) -> Inode:
        """A hard link: ``name`` in directory ``parent_id`` becomes another name of ``ino``."""
        with self.lock:
            node = self.tree.get(ino)
            parent = self._dir_by_id(parent_id)
            self.check_link(node, parent, name)
            seq = self.gate.commit(E.Link(node.id, parent.id, name, time.time_ns()))
        self.gate.durable(seq)
        return node

    def complete(self, ino: int, length: int, block_size: int) -> None:
        if length < 0:
            raise InvalidArgument(f"negative length {length}")
        if block_size <= 0 or block_size & (block_size - 1):
            raise InvalidArgument(f"block size {block_size} is not a power of two")
        with self.lock:
            node = self.tree.get(ino)
            if node.mode & S_IFMT != S_IFREG:
                raise IsADirectory(f"inode {ino} is not a regular file")
            seq = self.gate.commit(E.CompleteFile(ino, length, block_size, time.time_ns()))
        self.gate.durable(seq)

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> Inode:
        parents, name = parent_and_name(path)
        if not target or "\0" in target:
            raise InvalidArgument("a symlink target must be non-empty and free of NUL")
        try:
            name_bytes(target)  # bytes, UTF-8 or not, as a name is
        except InvalidName as exc:
            raise InvalidArgument(f"symlink target: {exc}") from None
        with self.lock:
            parent = self._dir(parents)
            self._free_name(parent, name)
            self.check_writable(parent)
            entry = E.Symlink(self.tree.next_id, parent.id, name, target, uid, gid, time.time_ns())
            seq = self.gate.commit(entry)
        self.gate.durable(seq)
        return self.tree.get(entry.id)

    def setattr(self, path: str, **changes: Any) -> Inode:
        """Changes mode, uid, gid, mtime, size, pinned/media or ttl_ms/ttl_action."""
        allowed = set(E.SetAttr._fields) - {"id", "time"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidArgument(f"unknown attributes {sorted(unknown)}")
        size = changes.get("size")
        if size is not None and size < 0:
            raise InvalidArgument(f"negative size {size}")
        with self.lock:
            node = self.tree.resolve(split_path(path))
            if size is not None and node.mode & S_IFMT != S_IFREG:
                raise IsADirectory(f"{path} is not a regular file")
            self.check_writable(node)
            seq = self.gate.commit(E.SetAttr(node.id, time.time_ns(), **changes))
        self.gate.durable(seq)
        return node

    def rename(
        self, src: str, dst: str, *, noreplace: bool = False, below_mount: bool = False,
        store_from: str | None = None,
    ) -> str | None:  # fmt: skip
        """``below_mount``: the names are in a mount's store (engine/ufsfirst.py), where a
        file not persisted moved over another leaves the replaced file's copy in the store
        until it is removed after this entry; the entry records it on the moved file
        (Rename.stale). Returns what it recorded, None if nothing. ``store_from``: the store
        path of a persisted file's (or a directory's) content, moved after this entry
        (Rename.store_from, engine/storemove.py)."""
        src_parts, src_name = parent_and_name(src)
        dst_parts, dst_name = parent_and_name(dst)
        with self.lock:
            tree = self.tree
            src_parent = self._dir(src_parts)
            node = src_parent.children.get(src_name)  # type: ignore[union-attr]
            if node is None:
                raise NotFound(f"{src} does not exist")
            dst_parent = self._dir(dst_parts)
            check_name(dst_name)
            self.check_writable(src_parent)
            self.check_writable(dst_parent)
            if node.id in self.state.mounts:
                raise Busy(f"{src} is a mount point; unmount it first")
            if node.children is not None and tree.is_ancestor(node.id, dst_parent):
                raise InvalidArgument(f"cannot move {src} into itself")
            existing = dst_parent.children.get(dst_name)  # type: ignore[union-attr]
            if existing is node:
                return None
            if existing is not None:
                if noreplace:
                    raise AlreadyExists(f"{dst} already exists")
                if existing.id in self.state.mounts:
                    raise Busy(f"{dst} is a mount point")
                if existing.children is not None:
                    if node.children is None:
                        raise IsADirectory(f"{dst} is a directory")
                    if existing.children:
                        raise NotEmpty(f"{dst} is a directory that is not empty")
                elif node.children is not None:
                    raise NotADirectory(f"{dst} is not a directory")
            stale = _stale_copy(node, existing) if below_mount else None
            entry = E.Rename(
                node.id, src_parent.id, src_name, dst_parent.id, dst_name, time.time_ns(),
                existing.id if existing is not None else None, stale, store_from,
                existing is not node and self.open_files.orphans(existing),
            )  # fmt: skip
            seq = self.gate.commit(entry)
        self.gate.durable(seq)
        return stale

    def delete(self, path: str, *, recursive: bool = False) -> None:
        parents, name = parent_and_name(path)
        with self.lock:
            parent = self._dir(parents)
            node = parent.children.get(name)  # type: ignore[union-attr]
            if node is None:
                raise NotFound(f"{path} does not exist")
            self.check_writable(parent)
            if node.children and not recursive:
                raise NotEmpty(f"{path} is a directory that is not empty")
            if self.state.mounts and self.holds_mount(node):
                raise Busy(f"{path} is or contains a mount point; unmount it first")
            orphan = self.open_files.orphans(node)
            seq = self.gate.commit(E.Delete(node.id, parent.id, name, time.time_ns(), orphan))
        self.gate.durable(seq)

    def holds_mount(self, node: Inode) -> bool:
        for ino in self.state.mounts:
            target = self.tree.find(ino)
            if target is not None and self.tree.is_ancestor(node.id, target):
                return True
        return False

    def _dir_by_id(self, ino: int) -> Inode:
        node = self.tree.get(ino)
        if node.children is None:
            raise NotADirectory(f"inode {ino} is not a directory")
        return node


def _stale_copy(node: Inode, existing: Inode | None) -> str | None:
    """What a rename of ``node`` over ``existing`` below a mount records as the copy the store
    may still hold under the new name (Rename.stale): the replaced file's, unless the moved file
    is persisted (its own copy was moved over it) or a directory (nothing is replaced but an
    empty directory)."""
    if existing is None or node.children is not None or node.flags & PERSISTED:
        return None
    known = existing.ext.fingerprint if existing.ext is not None else None
    return known or E.STALE_COPY

"""Shoal's whole state and the one function that changes it: ``State.apply(entry)``.

``apply`` is pure and deterministic: everything it needs is inside the entry, so applying the
same entries to the same state always gives the same result, live or in replay. Operations
validate before they append, so an entry that does not fit the state means the log is not the
one this state was built from; ``apply`` raises ``ApplyError`` for it and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from engine.inode import (
    COMPLETE,
    PERSISTED,
    PINNED,
    PROVISIONAL,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    SPECIAL_TYPES,
    Inode,
    InodeTree,
    shared_int,
    shared_values,
)
from engine.nodechecks import (
    pending_moves,
    staged_problem,
    stale_problem,
    store_from_problem,
    xattr_problem,
)
from engine.orphanrules import orphan_problem
from engine.pathconf import PathConfs
from journal import entries as E

_share = shared_values.setdefault
_new_inode = Inode.__new__
BLOCK_SHIFT_BITS = 8  # flags bits 8..15 hold log2(block size)
_block_bits: dict[int, int] = {}


def _build_then_apply(cls: Any, fn: Callable[[Any], None], fields: list[Any]) -> None:
    fn(tuple.__new__(cls, fields))


class ApplyError(Exception):
    """An entry does not fit the state it is applied to."""


class Mount(NamedTuple):
    id: int
    uri: str
    options: dict[str, str]
    readonly: bool
    credential: str | None
    time: int


class BlockInfo(NamedTuple):
    tier: str
    length: int
    checksum: int


def block_size_of(node: Inode) -> int:
    shift = node.flags >> BLOCK_SHIFT_BITS
    return 1 << shift if shift else 0


def encode_block_size(block_size: int) -> int:
    if block_size & (block_size - 1) or block_size <= 0:
        raise ApplyError(f"block size {block_size} is not a power of two")
    return (block_size.bit_length() - 1) << BLOCK_SHIFT_BITS


class State:
    """The namespace, mount table, block map and persist queue, as of ``last_seq``."""

    def __init__(self) -> None:
        self.tree = InodeTree()
        self.mounts: dict[int, Mount] = {}
        # file id -> {(version, index): BlockInfo}
        self.blocks: dict[int, dict[tuple[int, int], BlockInfo]] = {}
        self.persists: dict[int, int] = {}  # file id -> content version to upload
        # inode -> (store path its content is still to be moved from, the file's fingerprint
        # then, "" for a directory): pending store moves (Rename.store_from, StoreMoved)
        self.store_moves: dict[int, tuple[str, str]] = {}
        self.orphans: dict[int, Inode] = {}  # unlinked while open: engine/openfiles.py
        self.pathconfs = PathConfs()  # per-path defaults: engine/pathconf.py
        self.last_seq = 0

    def apply(self, entry: Any, seq: int) -> None:
        try:
            _APPLY[type(entry)](self, entry)
        except ApplyError:
            raise
        except (KeyError, IndexError, AttributeError, TypeError, ValueError) as exc:
            raise ApplyError(f"{type(entry).__name__} does not fit the state: {exc!r}") from exc
        self.last_seq = seq

    def replay_appliers(self) -> dict[int, Callable[[list[Any]], None]]:
        """Type code -> function applying a decoded field list, for replay. The frequent
        entries' apply functions unpack their fields by position, so they take the list as it
        is; the others get the entry built first."""
        out: dict[int, Callable[[list[Any]], None]] = {}
        for cls, fn in _APPLY.items():
            bound = fn.__get__(self)
            positional = cls in _POSITIONAL
            out[E.TYPE_CODES[cls]] = bound if positional else partial(_build_then_apply, cls, bound)
        return out

    def block_count(self) -> int:
        return sum(len(b) for b in self.blocks.values())

    # -- helpers -----------------------------------------------------------------------------

    def _dir(self, ino: int) -> Inode:
        node = self.tree.find(ino)
        if node is None or node.children is None:
            raise ApplyError(f"inode {ino} is not a directory")
        return node

    def _node(self, ino: int, orphans: bool = False) -> Inode:
        node = self.tree.find(ino) or (self.orphans.get(ino) if orphans else None)
        if node is None:
            raise ApplyError(f"inode {ino} does not exist")
        return node

    def _new(
        self, ino: int, pid: int, name: str, mode: int, uid: int, gid: int, t: int,
        children: dict[str, Inode] | None, size: int = 0,
    ) -> Inode:  # fmt: skip
        # The hottest code of replay: one call per created inode.
        tree = self.tree
        table = tree.table
        n = len(table)
        parent = table[pid] if 0 < pid < n else None
        siblings = parent.children if parent is not None else None
        if siblings is None:
            raise ApplyError(f"inode {pid} is not a directory")
        if name in siblings:
            raise ApplyError(f"{name!r} already exists in directory {pid}")
        if ino < n and (ino <= 0 or table[ino] is not None or ino in self.orphans):
            raise ApplyError(f"inode {ino} already exists or is invalid")
        # Attributes set one by one rather than through Inode(...): a third cheaper per inode.
        node = _new_inode(Inode)
        node.id = ino
        node.parent = parent.id  # type: ignore[union-attr]  # share the parent's int object
        node.name = name
        node.mode = _share(mode, mode)
        node.uid = _share(uid, uid)
        node.gid = _share(gid, gid)
        node.size = size
        node.mtime = node.ctime = t
        node.version = node.flags = 0
        node.children = children
        node.ext = None
        if ino == n:
            table.append(node)
            tree.next_id = ino + 1 if ino >= tree.next_id else tree.next_id
        else:
            while len(table) <= ino:
                table.append(None)
            table[ino] = node
            if ino >= tree.next_id:
                tree.next_id = ino + 1
        tree.count += 1
        siblings[name] = node
        if children is not None:
            subdirs = tree.subdirs
            subdirs[pid] = subdirs.get(pid, 0) + 1
        parent.mtime = parent.ctime = t  # type: ignore[union-attr]
        return node

    def _forget(self, dropped: list[Inode]) -> None:
        for node in dropped:
            ino = node.id
            self.blocks.pop(ino, None)
            self.persists.pop(ino, None)
            self.mounts.pop(ino, None)
            self.store_moves.pop(ino, None)

    def _new_content(self, node: Inode) -> None:
        """The file's bytes changed: a new version; blocks of the old one can never be served."""
        self.blocks.pop(node.id, None)
        node.version += 1
        node.flags &= ~PERSISTED

    # -- namespace -----------------------------------------------------------------------------

    # Replay's most frequent entries unpack their fields positionally: faster than attributes.

    def _mkdir(self, e: E.MkDir) -> None:
        ino, pid, name, mode, uid, gid, t = e
        self._new(ino, pid, name, S_IFDIR | (mode & 0o7777), uid, gid, t, {})

    def _create(self, e: E.CreateFile) -> None:
        ino, pid, name, mode, uid, gid, t, rdev = e
        fmt = mode & S_IFMT
        if fmt not in SPECIAL_TYPES:  # older entries carry no type, or S_IFREG
            self._new(ino, pid, name, S_IFREG | (mode & 0o7777), uid, gid, t, None)
            return
        node = self._new(ino, pid, name, fmt | (mode & 0o7777), uid, gid, t, None)
        node.flags = COMPLETE  # no content to wait for
        if rdev:
            node.ensure_ext().rdev = rdev

    def _link(self, e: E.Link) -> None:
        node = self._node(e.id)
        if node.children is not None:
            raise ApplyError(f"inode {e.id} is a directory: it cannot have another name")
        parent = self._dir(e.parent)
        if e.name in parent.children:  # type: ignore[operator]
            raise ApplyError(f"{e.name!r} already exists in directory {e.parent}")
        self.tree.add_name(node, parent, e.name)
        node.ctime = e.time
        parent.mtime = parent.ctime = e.time

    def _symlink(self, e: E.Symlink) -> None:
        ino, pid, name, target, uid, gid, t = e
        size = len(target.encode("utf-8", "surrogateescape"))  # its bytes, UTF-8 or not
        node = self._new(ino, pid, name, S_IFLNK | 0o777, uid, gid, t, None, size)
        node.flags = COMPLETE
        node.ensure_ext().target = target

    def _complete(self, e: E.CompleteFile) -> None:
        ino, length, block_size, t = e
        try:
            node = self.tree.table[ino] if ino > 0 else None
        except IndexError:
            node = None
        if node is None or node.mode & S_IFMT != S_IFREG:
            raise ApplyError(f"inode {ino} is not a regular file")
        node.size = length
        bits = _block_bits.get(block_size)
        if bits is None:
            bits = _block_bits[block_size] = encode_block_size(block_size)
        flags = (node.flags & 0xFF) | COMPLETE | bits
        node.flags = _share(flags, flags)
        node.mtime = node.ctime = t

    def _setattr(self, e: E.SetAttr) -> None:
        node = self._node(e.id, orphans=True)
        if e.fingerprint is not None and node.mode & S_IFMT != S_IFREG:
            raise ApplyError(f"inode {e.id} is not a regular file: it has no UFS copy")
        if e.mode is not None:
            node.mode = shared_int((node.mode & S_IFMT) | (e.mode & 0o7777))
        if e.uid is not None:
            node.uid = shared_int(e.uid)
        if e.gid is not None:
            node.gid = shared_int(e.gid)
            if e.mode is not None and e.uid is not None:  # all three given: none provisional
                node.flags = shared_int(node.flags & ~PROVISIONAL)
        if e.size is not None:
            if node.mode & S_IFMT != S_IFREG:
                raise ApplyError(f"inode {e.id} is not a regular file")
            node.size = e.size
            self._new_content(node)
            node.mtime = e.time
        if e.mtime is not None:
            node.mtime = e.mtime
        if e.pinned is not None:
            node.flags = shared_int(node.flags | PINNED if e.pinned else node.flags & ~PINNED)
            ext = node.ensure_ext()
            ext.media = list(e.media) if e.pinned and e.media else None
        if e.ttl_ms is not None:
            ext = node.ensure_ext()
            if e.ttl_ms < 0:
                ext.ttl_ms = ext.ttl_action = None
            else:
                ext.ttl_ms, ext.ttl_action = e.ttl_ms, e.ttl_action or "free"
        if e.read_type is not None:
            node.ensure_ext().read_type = e.read_type or None
        if e.write_type is not None:
            node.ensure_ext().write_type = e.write_type or None
        if e.fingerprint is not None:
            node.ensure_ext().fingerprint = e.fingerprint
        if e.atime is not None:
            node.ensure_ext().atime = e.atime
        if node.ext is not None and node.ext.empty():
            node.ext = None
        node.ctime = e.time

    def _rename(self, e: E.Rename) -> None:
        tree = self.tree
        node = self._node(e.id)
        src = self._dir(e.src_parent)
        dst = self._dir(e.dst_parent)
        if src.children.get(e.src_name) is not node:  # type: ignore[union-attr]
            raise ApplyError(f"inode {e.id} is not {e.src_name!r} in directory {e.src_parent}")
        if node.children is not None and tree.is_ancestor(node.id, dst):
            raise ApplyError(f"renaming directory {e.id} below itself")
        existing = dst.children.get(e.dst_name)  # type: ignore[union-attr]
        replaced = existing.id if existing is not None and existing is not node else None
        if replaced != e.replaced:
            raise ApplyError(f"rename expected to replace {e.replaced}, found {replaced}")
        problem = stale_problem(node, e.stale) or store_from_problem(node, e.store_from)
        if problem is not None:
            raise ApplyError(problem)
        if existing is node and (src is not dst or e.src_name != e.dst_name):
            raise ApplyError(f"{e.dst_name!r} is another name of inode {e.id} already")
        if e.orphan and (problem := orphan_problem(existing, node)):
            raise ApplyError(problem)
        if existing is not None and existing is not node:
            if existing.children:
                raise ApplyError(f"rename over non-empty directory {existing.id}")
            self._unname(existing, dst, e.dst_name, e.time, e.orphan)
        tree.rename_name(node, src, e.src_name, dst, e.dst_name)
        if e.stale is not None:
            # In the same entry as the move: no crash can separate the name from what the
            # store may still hold under it (engine/ufsfirst.py removes that copy after).
            node.ensure_ext().fingerprint = e.stale
        if e.store_from is not None:
            # The move itself is recorded, so no crash separates the new name from where the
            # content still is: the store is changed after this entry (engine/storemove.py).
            pending_moves(self.store_moves, node, e.store_from)
        node.ctime = e.time
        src.mtime = src.ctime = dst.mtime = dst.ctime = e.time

    def _delete(self, e: E.Delete) -> None:
        node = self._node(e.id)
        parent = self._dir(e.parent)
        if parent.children.get(e.name) is not node:  # type: ignore[union-attr]
            raise ApplyError(f"inode {e.id} is not {e.name!r} in directory {e.parent}")
        if e.orphan and (problem := orphan_problem(node)):
            raise ApplyError(problem)
        self._unname(node, parent, e.name, e.time, e.orphan)
        parent.mtime = parent.ctime = e.time

    def _unname(self, node: Inode, parent: Inode, name: str, t: int, orphan: bool = False) -> None:
        """One name of ``node`` goes; with its last, the inode (and what is below it)."""
        if self.tree.remove_name(node, parent, name):
            dropped = self.tree.drop_subtree(node)
            if not orphan:
                return self._forget(dropped)
            # Nothing of an orphan reaches the store; its blocks stay for its open handles.
            self.persists.pop(node.id, None)
            self.store_moves.pop(node.id, None)
            self.orphans[node.id] = node
        node.ctime = t

    def _set_xattr(self, e: E.SetXattr) -> None:
        node = self._node(e.id)
        problem = xattr_problem(node, e.name, e.value)
        if problem is not None:
            raise ApplyError(problem)
        node.set_xattr(e.name, e.value)
        node.ctime = e.time

    def _accessed(self, e: E.Accessed) -> None:
        self._node(e.id).ensure_ext().atime = e.atime

    # -- mounts and UFS ----------------------------------------------------------------------

    def _add_mount(self, e: E.AddMount) -> None:
        self._dir(e.id)
        if e.id in self.mounts:
            raise ApplyError(f"directory {e.id} is already a mount point")
        self.mounts[e.id] = Mount(e.id, e.uri, dict(e.options), e.readonly, e.credential, e.time)

    def _remove_mount(self, e: E.RemoveMount) -> None:
        del self.mounts[e.id]

    def _fingerprint(self, e: E.UfsFingerprint) -> None:
        node = self._node(e.id)
        ext = node.ensure_ext()
        if e.new_content or (ext.fingerprint is not None and ext.fingerprint != e.fingerprint):
            self._new_content(node)
        ext.fingerprint = e.fingerprint
        node.size = e.size
        node.mtime = e.mtime
        # The store's copy changed then (written through, or by someone else): so did the file.
        node.ctime = max(node.ctime, e.mtime)
        flags = (node.flags & ~PROVISIONAL) | PERSISTED | COMPLETE | PROVISIONAL * e.provisional
        if e.block_size and not flags >> BLOCK_SHIFT_BITS:
            # Blocks are cut at this size from now on: a later change of the configured block
            # size must not shift what a cached block index means.
            flags |= encode_block_size(e.block_size)
        node.flags = shared_int(flags)

    # -- block cache and persistence ---------------------------------------------------------

    def _block_cached(self, e: E.BlockCached) -> None:
        node = self._node(e.file, orphans=True)
        if e.version != node.version and e.version != node.version + 1:  # +1: staged
            raise ApplyError(f"block of version {e.version}, file {e.file} is at {node.version}")
        self.blocks.setdefault(e.file, {})[(e.version, e.idx)] = BlockInfo(
            e.tier, e.length, e.checksum
        )

    def _block_moved(self, e: E.BlockMoved) -> None:
        blocks = self.blocks[e.file]
        key = (e.version, e.idx)
        blocks[key] = blocks[key]._replace(tier=e.tier)

    def _block_removed(self, e: E.BlockRemoved) -> None:
        blocks = self.blocks[e.file]
        del blocks[(e.version, e.idx)]
        if not blocks:
            del self.blocks[e.file]

    def _persist_requested(self, e: E.PersistRequested) -> None:
        self._node(e.id)
        self.persists[e.id] = e.version

    def _persisted(self, e: E.Persisted) -> None:
        node = self._node(e.id)
        requested = self.persists.get(e.id) == e.version
        if requested:
            del self.persists[e.id]
        if node.version == e.version:
            node.flags = shared_int(node.flags | PERSISTED)
            node.ensure_ext().fingerprint = e.fingerprint
        elif requested and not node.flags & PERSISTED:
            # A superseded request: an upload of it may have landed before a crash (its own
            # Persisted never journaled), so the store may hold that copy under the file's
            # name. Remembered like a stale copy, so deleting the file removes it there.
            ext = node.ensure_ext()
            ext.fingerprint = ext.fingerprint or e.fingerprint or E.STALE_COPY

    def _content_committed(self, e: E.ContentCommitted) -> None:
        node = self._node(e.id)
        if node.mode & S_IFMT != S_IFREG:
            raise ApplyError(f"inode {e.id} is not a regular file")
        if e.version != node.version + 1:
            raise ApplyError(f"staged version {e.version}, file {e.id} is at {node.version}")
        bits = encode_block_size(e.block_size)
        blocks = self.blocks.get(e.id, {})
        problem = staged_problem(blocks, e.version, e.length, e.block_size)
        if problem is not None:
            raise ApplyError(f"inode {e.id}: {problem}")
        # Checked: from here on nothing can fail, so the switch is all or nothing.
        kept = {key: info for key, info in blocks.items() if key[0] == e.version}
        if kept:
            self.blocks[e.id] = kept
        else:
            self.blocks.pop(e.id, None)
        node.version = e.version
        node.size = e.length
        node.flags = shared_int((node.flags & 0xFF & ~PERSISTED) | COMPLETE | bits)
        node.mtime = node.ctime = e.time
        if e.persist:
            self.persists[e.id] = e.version

    def _store_copy(self, e: E.StoreCopy) -> None:
        node = self._node(e.id)
        problem = stale_problem(node, e.fingerprint)
        if problem is not None:
            raise ApplyError(problem)
        ext = node.ensure_ext()
        ext.fingerprint = ext.fingerprint or e.fingerprint

    def _store_moved(self, e: E.StoreMoved) -> None:
        if self.store_moves.pop(e.id, None) is None:
            raise ApplyError(f"inode {e.id} has no pending store move")


# Entry types whose apply functions unpack their fields by position (see replay_appliers).
_POSITIONAL = {E.MkDir, E.CreateFile, E.CompleteFile, E.Symlink}

# Entry type -> apply function. A class-level table rather than bound methods in the instance:
# a State must not be part of a reference cycle (see journal.journal._build_in_bulk).
_APPLY: dict[Any, Callable[[State, Any], None]] = {
    E.MkDir: State._mkdir,
    E.CreateFile: State._create,
    E.CompleteFile: State._complete,
    E.SetAttr: State._setattr,
    E.Rename: State._rename,
    E.Delete: State._delete,
    E.Symlink: State._symlink,
    E.AddMount: State._add_mount,
    E.RemoveMount: State._remove_mount,
    E.UfsFingerprint: State._fingerprint,
    E.BlockCached: State._block_cached,
    E.BlockMoved: State._block_moved,
    E.BlockRemoved: State._block_removed,
    E.PersistRequested: State._persist_requested,
    E.Persisted: State._persisted,
    E.ContentCommitted: State._content_committed,
    E.StoreCopy: State._store_copy,
    E.Link: State._link,
    E.SetXattr: State._set_xattr,
    E.Accessed: State._accessed,
    E.StoreMoved: State._store_moved,
    E.OrphanReleased: lambda st, e: st._forget([st.orphans.pop(e.id)]),
    E.PathConfSet: lambda st, e: st.pathconfs.apply(e),
}

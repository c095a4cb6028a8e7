"""The calls a kernel frontend makes: by inode id and name, on behalf of a ``Caller``.

Each applies engine/posix.py's rules in their order of precedence, then makes its change
through the FileSystem's path-based operations (UFS first below a mount, then the journal), so
a change made through a mount and one made by the command line are the same change. The
FileSystem facade hands itself in (its methods under "calls from the FUSE frontend" delegate
here); ``Paths`` is what these calls need of it.

Calls that may block (listing a directory from its UFS) take ``wait``: with False they return
None rather than block, so that a frontend can answer from its event loop whenever nothing is
due and hop to a thread only when something is.
"""

from __future__ import annotations

import io
import logging
import time
from array import array
from collections.abc import Callable
from typing import BinaryIO, Protocol

from engine import posix
from engine.cache.blockcache import BlockCache
from engine.errors import AlreadyExists
from engine.inode import S_IFMT, S_IFREG, Inode
from engine.links import LinkChanges
from engine.names import check_name
from engine.namespace import Namespace
from engine.posix import Caller
from engine.state import block_size_of
from engine.sync import MetadataSync
from journal import entries as E
from journal.errors import JournalError

log = logging.getLogger(__name__)


class Paths(Protocol):
    """What these calls need of engine/filesystem.py's FileSystem."""

    ns: Namespace
    sync: MetadataSync
    links: LinkChanges

    @property
    def cache(self) -> BlockCache | None: ...

    def mkdir(self, path: str, mode: int, uid: int, gid: int) -> Inode: ...

    def delete(
        self, path: str, *, recursive: bool = False, directory: bool | None = None
    ) -> None: ...

    def rename(self, src: str, dst: str, *, noreplace: bool = False) -> None: ...

    def write_file(
        self, path: str, source: BinaryIO, mode: int, uid: int, gid: int,
        write_type: str | None = None, mtime: int | None = None,
    ) -> Inode: ...  # fmt: skip

    def symlink(self, path: str, target: str, uid: int, gid: int) -> Inode: ...

    def check_storable(self, path: str, is_dir: bool) -> None: ...

    def set_attrs(
        self,
        node: Inode,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mtime: int | None = None,
        atime: int | None = None,
    ) -> None: ...

    def set_attrs_now(self, node: Inode, **changes: int) -> int | None: ...


def _path(ns: Namespace, parent: Inode, name: str) -> str:
    return ns.path_of(parent).rstrip("/") + "/" + name


# -- reading the tree ------------------------------------------------------------------------


def _loaded(fs: Paths, directory: Inode, wait: bool) -> bool:
    """Lists a directory of a mount from its UFS first if it is due (lazy load, sync); False,
    without ``wait``, if that is due (it may block)."""
    if fs.sync.needs_load(directory):
        if not wait:
            return False
        fs.sync.lookup(fs.ns.path_of(directory))
    return True


def lookup(fs: Paths, parent_id: int, name: str, wait: bool) -> Inode | None:
    tree = fs.ns.tree
    parent = posix.directory(tree, parent_id)
    dot = posix.dot_entry(tree, parent, name)
    if dot is not None:
        return dot
    if not _loaded(fs, parent, wait):
        return None
    return posix.entry(parent, name)


def open_dir(fs: Paths, ino: int, wait: bool) -> Inode | None:
    node = posix.directory(fs.ns.tree, ino)
    return node if _loaded(fs, node, wait) else None


def child_ids(fs: Paths, ino: int, wait: bool) -> array[int] | None:
    """The ids of a directory's children, listed from its UFS first if due. Without ``wait``,
    None if that or the namespace lock (a checkpoint, say) would make it wait."""
    node = posix.directory(fs.ns.tree, ino)
    if not _loaded(fs, node, wait):
        return None
    lock = fs.ns.lock
    if not lock.acquire(blocking=wait):
        return None
    try:
        return _ids(node)
    finally:
        lock.release()


def child_entries(fs: Paths, ino: int, wait: bool) -> tuple[list[str], array[int]] | None:
    """``child_ids`` with the names: a hard-linked file is listed under each of its names."""
    node = posix.directory(fs.ns.tree, ino)
    if not _loaded(fs, node, wait):
        return None
    lock = fs.ns.lock
    if not lock.acquire(blocking=wait):
        return None
    try:
        children = node.children
        return list(children), _ids(node)  # type: ignore[arg-type]
    finally:
        lock.release()


def _ids(node: Inode) -> array[int]:
    return array("q", [child.id for child in node.children.values()])  # type: ignore[union-attr]


def child_of(fs: Paths, parent_id: int, name: str) -> Inode | None:
    """The entry ``name`` of a directory if there is one; None for anything else."""
    parent = fs.ns.tree.find(parent_id)
    if parent is None or parent.children is None:
        return None
    return parent.children.get(name)


def block_size(fs: Paths, node: Inode) -> int:
    """The block size a file's content is read and written in."""
    return block_size_of(node) or fs.sync.block_size


def space(fs: Paths) -> tuple[int, int, int]:
    """(bytes the cache tiers may hold, bytes they hold, inodes) for statfs."""
    capacity = used = 0
    cache = fs.cache
    if cache is not None:
        for tier in cache.tiers:
            capacity += tier.quota
            used += cache.used[tier.name]
    return capacity, used, fs.ns.tree.count


def read_only_root(fs: Paths) -> bool:
    mount = fs.ns.state.mounts.get(fs.ns.tree.root.id)
    return mount is not None and mount.readonly


# -- changes ---------------------------------------------------------------------------------


def mkdir(fs: Paths, caller: Caller, parent_id: int, name: str, mode: int) -> Inode:
    parent = posix.parent_for(fs.ns.tree, parent_id, name)
    uid, gid = posix.owner_of_new(caller, parent)
    mode = posix.mode_of_new(caller, parent, mode, directory=True)
    return fs.mkdir(_path(fs.ns, parent, name), mode, uid, gid)


def create(fs: Paths, caller: Caller, parent_id: int, name: str, mode: int) -> Inode:
    """Journals the name only; the content reaches the UFS when it is committed (flush,
    fsync, close), which is when a file of zero bytes gets there too."""
    parent = posix.parent_for(fs.ns.tree, parent_id, name)
    uid, gid = posix.owner_of_new(caller, parent)
    mode = posix.mode_of_new(caller, parent, mode, directory=False)
    if name not in parent.children:  # type: ignore[operator]
        # Only the name is journaled now: a name the store cannot hold is refused before.
        fs.check_storable(_path(fs.ns, parent, name), is_dir=False)
    return fs.ns.create_in(parent.id, name, mode, uid, gid)


def create_now(
    fs: Paths, caller: Caller, parent_id: int, name: str, mode: int
) -> tuple[int, Inode] | None:
    """``create`` without a wait, for the event loop: (the CreateFile's sequence number, the
    file); None where it would wait (a listing of the directory to load first, the lock
    taken): ``create`` in a thread then. Its rules and checks are ``create``'s, in its order,
    under the lock taken without waiting (the path's walk takes it too)."""
    parent = posix.parent_for(fs.ns.tree, parent_id, name)
    if fs.sync.needs_load(parent):  # before the lock, as a lookup on the loop asks it
        return None
    lock = fs.ns.lock
    if not lock.acquire(blocking=False):
        return None
    try:
        uid, gid = posix.owner_of_new(caller, parent)
        mode = posix.mode_of_new(caller, parent, mode, directory=False)
        if name not in parent.children:  # type: ignore[operator]
            fs.check_storable(_path(fs.ns, parent, name), is_dir=False)  # reads only the tree
        return fs.ns.create_now(parent.id, name, mode, uid, gid)
    finally:
        lock.release()


def symlink(fs: Paths, caller: Caller, parent_id: int, name: str, target: str) -> Inode:
    parent = posix.parent_for(fs.ns.tree, parent_id, name)
    uid, gid = posix.owner_of_new(caller, parent)
    return fs.symlink(_path(fs.ns, parent, name), target, uid, gid)


def mknod(fs: Paths, caller: Caller, parent_id: int, name: str, mode: int, rdev: int) -> Inode:
    """A special file (a fifo, a socket, a device); mknod of a regular file makes an empty
    one, through the UFS as any written file."""
    parent = posix.parent_for(fs.ns.tree, parent_id, name)
    uid, gid = posix.owner_of_new(caller, parent)
    perms = posix.mode_of_new(caller, parent, mode, directory=False)
    path = _path(fs.ns, parent, name)
    fmt = mode & S_IFMT
    if fmt in (0, S_IFREG):
        fs.ns.check_writable(parent)  # EROFS before EEXIST
        if fs.ns.tree.child(parent, name) is not None:
            raise AlreadyExists(f"{path} already exists")
        return fs.write_file(path, io.BytesIO(), perms, uid, gid)
    return fs.links.mknod(path, fmt | perms, rdev, uid, gid)


def link(fs: Paths, ino: int, parent_id: int, name: str) -> Inode:
    """A hard link (the kernel has checked the caller's right to make it)."""
    node = posix.inode(fs.ns.tree, ino)
    parent = posix.parent_for(fs.ns.tree, parent_id, name)
    return fs.links.link(node, _path(fs.ns, parent, name))


def remove(fs: Paths, caller: Caller, parent_id: int, name: str, directory: bool) -> None:
    """unlink (``directory`` False) or rmdir (True)."""
    parent = posix.parent_for(fs.ns.tree, parent_id, name)
    posix.check_remove(fs.ns, caller, parent, name)
    fs.links.hand_over(child_of(fs, parent.id, name), parent, name)
    fs.delete(_path(fs.ns, parent, name), directory=directory)


def rename(
    fs: Paths,
    caller: Caller,
    old: tuple[int, str],
    new: tuple[int, str],
    *,
    noreplace: bool,
    exchange: bool,
) -> None:
    posix.check_exchange(exchange)
    tree = fs.ns.tree
    old_parent, new_parent = posix.directory(tree, old[0]), posix.directory(tree, new[0])
    check_name(old[1])
    check_name(new[1])
    sides = (old_parent, old[1]), (new_parent, new[1])
    posix.check_rename(fs.ns, caller, *sides, noreplace=noreplace)
    replaced = None if noreplace else child_of(fs, new_parent.id, new[1])
    if replaced is not child_of(fs, old_parent.id, old[1]):
        fs.links.hand_over(replaced, new_parent, new[1])
    src, dst = (_path(fs.ns, parent, name) for parent, name in sides)
    fs.rename(src, dst, noreplace=noreplace)


def setattr(
    fs: Paths,
    ino: int,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    mtime: int | None = None,
    atime: int | None = None,
) -> Inode:
    """chmod, chown, touch -m, touch -a (the kernel has checked that the caller may); below a
    mount the owner, mode and mtime reach the store too (engine/ufsattrs.py)."""
    node = posix.inode(fs.ns.tree, ino)
    changes = _attr_changes(mode, uid, gid, mtime, atime)
    if changes:
        fs.set_attrs(node, **changes)
    return node


def setattr_now(fs: Paths, ino: int, **changes: int) -> int | None:
    """``setattr`` without a wait, for the event loop: the SetAttr's sequence number (the
    caller waits for it to be written); None if the change must wait for something (the
    store, an upload, the lock): ``setattr`` in a thread then."""
    node = posix.inode(fs.ns.tree, ino)
    return fs.set_attrs_now(node, **_attr_changes(**changes))


def _attr_changes(
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    mtime: int | None = None,
    atime: int | None = None,
) -> dict[str, int]:
    changes: dict[str, int] = {}
    if mode is not None:
        changes["mode"] = posix.mode_change(mode)
    for key, value in (("uid", uid), ("gid", gid), ("mtime", mtime), ("atime", atime)):
        if value is not None:
            changes[key] = value
    return changes


def accessed(fs: Paths, ino: int) -> bool:
    """A read of ``ino``: its access time moved as relatime says (engine/posix.py); whether it
    was. Nobody waits for the entry to be durable (an access time is not data), nor for the
    lock: taken elsewhere (a checkpoint), the move is left to the next read."""
    node = fs.ns.tree.find(ino)
    now = time.time_ns()
    if node is None or not posix.relatime_due(node, now):
        return False
    lock = fs.ns.lock
    if not lock.acquire(blocking=False):
        return False
    try:
        if fs.ns.tree.find(ino) is not node or fs.ns.on_read_only_mount(node):
            return False
        fs.ns.gate.commit(E.Accessed(ino, now))
        return True
    except JournalError as exc:  # a failed or closed journal fails changes, not reads
        log.debug("access time of inode %d not kept: %s", ino, exc)
        return False
    finally:
        lock.release()


def commit_content(
    fs: Paths, ino: int, content: Callable[[], BinaryIO], mtime: int | None = None
) -> bool:
    """A file's new content, written by the frontend, made durable as its write type says,
    with the file's mode and owner kept (and ``mtime``, a utimens' since the last write);
    False if the file was unlinked while open (its content has nowhere to go, and ``content``
    is not asked for)."""
    node = fs.ns.tree.find(ino)
    if node is None:
        return False
    mode = node.mode & posix.PERMISSION_BITS
    fs.write_file(fs.ns.path_of(node), content(), mode, node.uid, node.gid, mtime=mtime)
    return True

"""The file-system facade: namespace operations that reach the mounted stores, in one object
the FUSE layer, the command line and the tests call.

Each job is its own module; this class only wires them and keeps the calls in one place:

- engine/placement.py: where a path is stored, which read and write types apply to it;
- engine/ufsfirst.py: mkdir, delete, rename, carried out on the UFS before the journal;
- engine/ufsattrs.py: owners, modes and times, likewise;
- engine/writepath.py: a file's content written as its write type says, persist requests;
- engine/readpath.py: cache hits, misses from the UFS, readahead.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import BinaryIO

from engine import acls, byinode, openfiles, posix
from engine.cache.blockcache import BlockCache
from engine.commit import Deferred
from engine.inode import PROVISIONAL, Inode
from engine.links import LinkChanges
from engine.mounts import MountTable
from engine.namespace import Namespace
from engine.persister import Persister
from engine.placement import Placement
from engine.posix import Caller
from engine.readpath import ReadPath
from engine.spools import SpareSpools, StoreSpool, may_spool_in_store, store_spool
from engine.state import Mount
from engine.sync import MetadataSync
from engine.ufsattrs import StoreAttrs
from engine.ufsfirst import UfsFirstChanges
from engine.writepath import WritePath
from engine.xattrs import ExtendedAttributes


class FileSystem:
    def __init__(
        self,
        ns: Namespace,
        mounts: MountTable,
        sync: MetadataSync,
        cache: BlockCache | None,
        write_type: str = "THROUGH",
        read_type: str = "CACHE",
    ) -> None:
        self.ns = ns
        self.mounts = mounts
        self.sync = sync
        self.cache = cache
        self.placement = Placement(ns, mounts, sync, write_type, read_type)
        self.pathconf = self.placement.pathconf  # per-path defaults (engine/pathdefaults.py)
        self.changes = UfsFirstChanges(ns, self.placement)
        self.links = LinkChanges(ns, self.placement, self.changes.holding)
        self.attrs = StoreAttrs(ns, self.placement, self.changes)
        self.writes = WritePath(ns, sync, cache, self.placement)
        self.reads = ReadPath(ns, mounts, sync, cache, self.placement)
        sync.reread = self.reads.provisional.reread  # what an explicit sync reads besides
        self.xattrs = ExtendedAttributes(ns, self.placement)
        self.spares = SpareSpools(self.placement)  # the frontend's creates take them

    # -- settings kept by the parts ----------------------------------------------------------

    @property
    def write_type(self) -> str:
        """The configured default write type."""
        return self.placement.write_type

    @write_type.setter
    def write_type(self, value: str) -> None:
        self.placement.write_type = value

    @property
    def read_type(self) -> str:
        """The configured default read type."""
        return self.placement.read_type

    @read_type.setter
    def read_type(self, value: str) -> None:
        self.placement.read_type = value

    @property
    def readahead_blocks(self) -> int:
        """The readahead window when a reader turns sequential (0: no readahead)."""
        return self.reads.readahead_blocks

    @readahead_blocks.setter
    def readahead_blocks(self, value: int) -> None:
        self.reads.readahead_blocks = value

    @property
    def readahead_max_blocks(self) -> int:
        """How far the readahead window grows while the reader stays sequential."""
        return self.reads.readahead_max_blocks

    @readahead_max_blocks.setter
    def readahead_max_blocks(self, value: int) -> None:
        self.reads.readahead_max_blocks = value

    @property
    def persister(self) -> Persister | None:
        """The background uploader of ASYNC_THROUGH and persisted MUST_CACHE files."""
        return self.writes.persister

    @persister.setter
    def persister(self, value: Persister | None) -> None:
        self.writes.persister = self.changes.persister = value
        if value is not None:
            value.check_free = self.changes.moves.check_free

    # -- where things are stored and how -----------------------------------------------------

    def path_type(self, node: Inode, which: str) -> str | None:
        return self.placement.path_type(node, which)

    def set_types(
        self, path: str, read_type: str | None = None, write_type: str | None = None
    ) -> Inode:
        return self.placement.set_types(path, read_type, write_type)

    def mount_of(self, path: str) -> Mount | None:
        return self.placement.mount_of(path)

    # -- owners and modes a listing did not read (engine/provisional.py) ---------------------

    def attrs_pending(self, node: Inode) -> bool:
        """Whether ``node``'s owner and mode are provisional: ``settle_attrs`` reads them."""
        return bool(node.flags & PROVISIONAL)

    def attrs_needed(self, node: Inode, uid: int) -> bool:
        """Whether user ``uid``'s request must be answered with ``node``'s store attributes,
        read first: anyone's, root's too, since what a lookup or stat answers is what `tar c`,
        `cp -a` and `rsync` copy (provisional ones would hand them 0600 and the listing's
        time). A GET that comes first (a read, readahead, prefetch) brings them with it."""
        return bool(node.flags & PROVISIONAL)

    def attrs_needed_at_lookup(self, node: Inode, uid: int) -> bool:
        """``attrs_needed`` for a lookup: user ``uid``'s sticky-directory and owner checks are
        decided by the kernel on what a lookup answers, without asking; root is refused none
        of them, and anything else asks (GETATTR: provisional attributes are kept for no
        time). So root's lookups, the ones of a training job's readers, wait for no store
        request: the kernel sends one directory's lookups one at a time."""
        return bool(node.flags & PROVISIONAL) and uid != 0

    def settle_attrs(self, node: Inode) -> None:
        """Reads ``node``'s owner and mode from its store now (a request: not on the loop)."""
        self.reads.settle_attrs(node)

    # -- UFS-first namespace changes ---------------------------------------------------------

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        return self.changes.mkdir(path, mode, uid, gid)

    def makedirs(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        return self.changes.makedirs(path, mode, uid, gid)

    def delete(self, path: str, *, recursive: bool = False, directory: bool | None = None) -> None:
        openfiles.keep_content(self.ns, self.reads, path)  # an open file lives on: cache it
        self.changes.delete(path, recursive=recursive, directory=directory)

    def rename(self, src: str, dst: str, *, noreplace: bool = False) -> None:
        if not noreplace:
            openfiles.keep_content(self.ns, self.reads, dst)
        self.changes.rename(src, dst, noreplace=noreplace)

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> Inode:
        """A symlink lives in the namespace only, but below a mount its name must be one the
        store could hold, as every name there."""
        self.placement.check_storable(path, is_dir=False)
        return self.ns.symlink(path, target, uid, gid)

    def check_storable(self, path: str, is_dir: bool) -> None:
        self.placement.check_storable(path, is_dir)

    def set_attrs(
        self,
        node: Inode,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mtime: int | None = None,
        atime: int | None = None,
    ) -> None:
        """chmod, chown, utimens: in the store first where it holds a copy (an access time
        in the namespace only)."""
        self.attrs.set(node, mode, uid, gid, mtime, atime)

    def set_attrs_now(self, node: Inode, **changes: int) -> int | None:
        return self.attrs.set_now(node, **changes)

    # -- file content ------------------------------------------------------------------------

    def write_file(
        self,
        path: str,
        source: BinaryIO,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        write_type: str | None = None,
        mtime: int | None = None,
    ) -> Inode:
        """``mtime``: the file's modification time after the write (None: the write's)."""
        # A rewrite holds the file: an upload of its old content must not land over the new.
        with self.changes.holding_path(path):
            return self.writes.write_file(path, source, mode, uid, gid, write_type, mtime)

    def store_spool(self, node: Inode, spool_dir: str | None = None) -> StoreSpool | None:
        """Where the frontend spools ``node``'s new content if not in the home (engine/spools.py):
        blocking (the store makes a temporary file)."""
        spool = store_spool(self.placement, self.ns.path_of(node), spool_dir)
        if spool is not None:  # before the store holds a byte of it (S3's early parts)
            spool.staged.prepare = functools.partial(self.writes.before_store, node)
        return spool

    def spare_spool(self, node: Inode) -> StoreSpool | None:
        """``store_spool`` for the new file ``node`` from a spool made ahead, without I/O (for
        the event loop); None if its store had none ready. ``refill_spare`` after either."""
        mount = self.placement.mounts.mount_of(node.id)
        spool = self.spares.take(mount) if mount is not None else None
        if spool is not None:
            spool.staged.prepare = functools.partial(self.writes.before_store, node)
        return spool

    def refill_spare(self, spool: StoreSpool, node: Inode) -> None:
        """A create got ``spool`` for ``node``: the next one made ahead (engine/spools.py);
        the path is found only if one is to be made."""
        self.spares.refill(spool, lambda: self.placement.sync.mount_of(node))

    def spools_in_store(self, node: Inode) -> bool:
        """Whether ``store_spool`` may make a spool for ``node`` (its write type writes the
        store at close): False means it makes none, and need not be called (nor a thread)."""
        return may_spool_in_store(self.placement, node)

    def persist(self, node: Inode) -> bool:
        return self.writes.persist(node)

    def read(self, path: str, offset: int, length: int, read_type: str | None = None) -> bytes:
        return self.reads.read(path, offset, length, read_type)

    def store_missing(self, node: Inode) -> None:
        self.reads.store_missing(node)

    def read_cached(self, node: Inode, offset: int, length: int) -> bytes | bytearray | None:
        if openfiles.is_orphan(self.ns, node.id):
            return None  # read_node serves it, from the cache alone
        return self.reads.read_cached(node, offset, length)

    def read_resident(self, node: Inode, offset: int, length: int) -> bytes | None:
        """A miss served without waiting (a local store's file in the kernel's caches), for the
        event loop; None if it would wait: ``read_node`` in a thread then."""
        if openfiles.is_orphan(self.ns, node.id):
            return None
        return self.reads.read_resident(node, offset, length)

    def read_node(
        self, node: Inode, offset: int, length: int, read_type: str | None = None
    ) -> bytes:
        if openfiles.is_orphan(self.ns, node.id):
            return openfiles.read(self.cache, node, self.block_size_for(node), offset, length)
        return self.reads.read_node(node, offset, length, read_type)

    # -- calls from the FUSE frontend (engine/posix.py holds the rules) --
    # By inode id and name, on behalf of a Caller; engine/byinode.py applies the rules, then
    # makes the change through the path-based operations above.

    def inode(self, ino: int) -> Inode:
        if openfiles.is_orphan(self.ns, ino):  # unlinked while open: fstat still answers
            return openfiles.node_of(self.ns, ino)
        return posix.inode(self.ns.tree, ino)

    def opened(self, ino: int, writing: bool = False) -> None:
        openfiles.opened(self.ns, ino, writing)

    def released(self, ino: int) -> None:
        openfiles.released(self.ns, self.cache, ino)

    def open_handles(self, ino: int) -> int:
        return self.ns.open_files.count(ino)

    def closed(self, ino: int, writing: bool = False) -> bool:
        """``released`` without the wait: True if an orphan's last handle closed, which
        ``release_orphan`` (it journals) must then let go. The last writer's close starts the
        file's ASYNC_THROUGH upload if one waited for it (engine/persister.py)."""
        orphan_gone = openfiles.closed(self.ns, ino, writing)
        if not writing:
            return orphan_gone
        persister = self.writes.persister
        if persister is not None and not self.ns.open_files.writing(ino):
            persister.closed_for_writing(ino)
        return orphan_gone

    def release_orphan(self, ino: int) -> None:
        openfiles.release(self.ns, self.cache, [ino])

    def nlink(self, node: Inode) -> int:
        return 0 if openfiles.is_orphan(self.ns, node.id) else self.ns.tree.nlink(node)

    def find_inode(self, ino: int) -> Inode | None:
        return self.ns.tree.find(ino)

    def lookup_in(self, parent_id: int, name: str, wait: bool = True) -> Inode | None:
        return byinode.lookup(self, parent_id, name, wait)

    def open_dir(self, ino: int, wait: bool = True) -> Inode | None:
        return byinode.open_dir(self, ino, wait)

    def child_ids(self, ino: int, wait: bool = True) -> array[int] | None:
        return byinode.child_ids(self, ino, wait)

    def child_entries(self, ino: int, wait: bool = True) -> tuple[list[str], array[int]] | None:
        return byinode.child_entries(self, ino, wait)

    def child_of(self, parent_id: int, name: str) -> Inode | None:
        return byinode.child_of(self, parent_id, name)

    def symlink_target(self, ino: int) -> str:
        return posix.symlink_target(self.inode(ino))

    def mkdir_as(self, caller: Caller, parent_id: int, name: str, mode: int) -> Inode:
        return byinode.mkdir(self, caller, parent_id, name, mode)

    def create_as(self, caller: Caller, parent_id: int, name: str, mode: int) -> Inode:
        return byinode.create(self, caller, parent_id, name, mode)

    def create_now(
        self, caller: Caller, parent_id: int, name: str, mode: int
    ) -> tuple[int, Inode] | None:
        """``create_as`` on the event loop where nothing makes it wait: (the CreateFile's
        sequence number, to ``await acknowledged(seq)``; the file); None: ``create_as``."""
        if not self.ns.gate.waits_async:
            return None
        return byinode.create_now(self, caller, parent_id, name, mode)

    def symlink_as(self, caller: Caller, parent_id: int, name: str, target: str) -> Inode:
        return byinode.symlink(self, caller, parent_id, name, target)

    def link_as(self, caller: Caller, ino: int, parent_id: int, name: str) -> Inode:
        return byinode.link(self, ino, parent_id, name)

    def mknod_as(self, caller: Caller, parent_id: int, name: str, mode: int, rdev: int) -> Inode:
        return byinode.mknod(self, caller, parent_id, name, mode, rdev)

    def unlink_as(self, caller: Caller, parent_id: int, name: str) -> None:
        byinode.remove(self, caller, parent_id, name, directory=False)

    def rmdir_as(self, caller: Caller, parent_id: int, name: str) -> None:
        byinode.remove(self, caller, parent_id, name, directory=True)

    def rename_as(
        self, caller: Caller, old: tuple[int, str], new: tuple[int, str], *, noreplace: bool,
        exchange: bool,
    ) -> None:  # fmt: skip
        byinode.rename(self, caller, old, new, noreplace=noreplace, exchange=exchange)

    def setattr_of(self, ino: int, **changes: int | None) -> Inode:
        if openfiles.is_orphan(self.ns, ino):
            return openfiles.set_attrs(self.ns, ino, **changes)
        return byinode.setattr(self, ino, **changes)

    def setattr_now(self, ino: int, **changes: int) -> int | None:
        """``setattr_of`` answered on the event loop where nothing makes it wait: the
        SetAttr's sequence number, to ``await acknowledged(seq)``; None: ``setattr_of``."""
        if openfiles.is_orphan(self.ns, ino) or not self.ns.gate.waits_async:
            return None
        return byinode.setattr_now(self, ino, **changes)

    async def acknowledged(self, seq: int, in_thread: Callable[..., Awaitable[object]]) -> None:
        """Returns once entry ``seq`` (and every earlier one) may be acknowledged, awaited on
        the caller's event loop where the journal allows (a writer process or thread writes
        the log), else in a thread by ``in_thread`` (the inline writer syncs in the waiting
        thread); then the automatic checkpoint, if due, in a thread too."""
        if seq <= 0:
            return
        gate = self.ns.gate
        if gate.waits_async:
            await gate.durable_async(seq)
        else:
            await in_thread(gate.durable, seq)
        if gate.checkpoint_due:
            await in_thread(gate.checkpoint_if_due)

    def unacknowledged(self) -> AbstractContextManager[Deferred]:
        """Changes made inside return without waiting for their entries; the caller
        acknowledges ``last.seq`` after (``acknowledged`` or ``wait_acknowledged``)."""
        return self.ns.gate.deferred()

    def wait_acknowledged(self, seq: int) -> None:
        self.ns.gate.durable(seq)

    def accessed(self, ino: int) -> bool:
        return byinode.accessed(self, ino)

    def get_xattr(self, ino: int, name: str) -> bytes:
        return self.xattrs.get(ino, name)

    def list_xattrs(self, ino: int) -> list[str]:
        return self.xattrs.names(ino)

    def set_xattr(self, ino: int, name: str, value: bytes | None) -> None:
        """Sets (``value`` None: removes) extended attribute ``name`` of ``ino``."""
        self.xattrs.set(ino, name, value)

    def set_acl_as(self, caller: Caller, ino: int, name: str, value: bytes | None) -> None:
        """setxattr (``value`` None: removexattr) of a POSIX ACL: kept as the mode where it
        says no more (engine/acls.py), else refused."""
        node = self.inode(ino)
        self.ns.check_writable(node)
        mode = acls.acl_chmod(caller, node, name, value)
        if mode is not None:
            self.setattr_of(ino, mode=mode)

    def open_inode(self, ino: int, writing: bool) -> Inode:
        node = self.inode(ino)
        posix.check_open(self.ns, node, writing)
        return node

    def check_truncate(self, node: Inode, size: int, limit: int) -> None:
        posix.check_truncate(self.ns, node, size, limit)

    def still_there(self, ino: int) -> Inode:
        return openfiles.node_of(self.ns, ino)

    def block_size_for(self, node: Inode) -> int:
        return byinode.block_size(self, node)

    def commit_content(
        self, ino: int, content: Callable[[], BinaryIO], mtime: int | None = None
    ) -> bool:
        return byinode.commit_content(self, ino, content, mtime)

    def space(self) -> tuple[int, int, int]:
        return byinode.space(self)

    def read_only_root(self) -> bool:
        return byinode.read_only_root(self)

    def make_durable(self) -> None:
        """Every change acknowledged so far made durable: fsync, fsyncdir (docs/operations.md,
        "Durability")."""
        self.ns.gate.sync()

    def all_durable(self) -> bool:
        """Whether ``make_durable`` has nothing to wait for (always so with "every_op")."""
        return self.ns.gate.synced()

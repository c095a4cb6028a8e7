"""The write path: a file's content written as its write type says (engine/iotypes.py).

Through the UFS (THROUGH, CACHE_THROUGH), the bytes reach the UFS first and the file is
journaled once it has them, cached as they pass if the type caches. Through the cache
(MUST_CACHE, ASYNC_THROUGH), the blocks are staged in the cache as the file's next content
version while its current one stays readable, and one entry makes the staged version the
file's content (with its persist pending, for an asynchronous type, which the persister is
then handed): a crash leaves the old content or the new, never an empty or half file. A write
that fails leaves nothing half-written visible.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from engine import metrics
from engine.cache.blockcache import BlockCache
from engine.cache.room import has_room_for
from engine.cache.staging import StagedVersion
from engine.errors import InvalidArgument, IsADirectory, NoSpace, NotFound
from engine.inode import Inode
from engine.iotypes import WriteType
from engine.links import mirror_names
from engine.mounts import ufs_errors
from engine.namespace import Namespace
from engine.persister import Persister
from engine.placement import Placement, UfsTarget
from engine.provisional import ProvisionalAttrs
from engine.spools import StoreSpool
from engine.state import PERSISTED
from engine.storehold import store_may_hold
from engine.sync import MetadataSync
from engine.xattrs import carry_to_store, xattrs_of
from journal import entries as E
from ufs.base import UfsAttrs, UfsStatus

# The largest last block written while the commit's appends are held (Journal.held): a hold
# gathers every thread's appends, so it spans a small tier write only.
_HELD_WRITE_MAX = 1 << 20


class NewFile(NamedTuple):
    """Where a write puts its file, and the attributes it gets if the write creates it."""

    parent: Inode
    name: str
    mode: int
    uid: int
    gid: int

    def existing(self) -> Inode | None:
        return self.parent.children.get(self.name)  # type: ignore[union-attr]

    def create(self, ns: Namespace, now: int) -> Inode:
        """With the namespace lock held: the file, created."""
        parent, name = self.parent, self.name
        entry = E.CreateFile(ns.tree.next_id, parent.id, name, self.mode, self.uid, self.gid, now)
        ns.gate.commit(entry)
        return parent.children[name]  # type: ignore[index]


class WritePath:
    def __init__(
        self, ns: Namespace, sync: MetadataSync, cache: BlockCache | None, placement: Placement
    ) -> None:
        self.ns = ns
        self.sync = sync
        self.cache = cache
        self.placement = placement
        self.persister: Persister | None = None

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
        """Creates or replaces ``path`` with ``source``'s bytes and returns once they are
        durable as the write type says (engine/iotypes.py, docs/cache.md); ``mtime``: the
        file's modification time after it (None: the write's own)."""
        parent, name, ufs = self.placement.target(path)
        if ufs is None:
            raise InvalidArgument(f"{path} is not below a mount: file data needs a UFS")
        existing = parent.children.get(name)  # type: ignore[union-attr]
        kind = self.placement.write_type_of(existing or parent, ufs[0], write_type)
        if existing is not None and existing.children is not None:
            raise IsADirectory(f"{path} is a directory")
        if existing is None:
            self.placement.check_storable(path, is_dir=False)
        new = NewFile(parent, name, mode, uid, gid)
        if not kind.writes_ufs_at_close:
            return self._write_cached(new, source, kind, mtime)
        # The store's copy gets the file's owner and mode (a new file: the ones asked for).
        attrs = UfsAttrs(mode, uid, gid, mtime)
        if existing is not None:  # its store's owner and mode, never provisional ones
            ProvisionalAttrs(self.ns, self.placement.mounts, self.sync).settle(existing)
            attrs = UfsAttrs(existing.mode & 0o7777, existing.uid, existing.gid, mtime)
        return self._write_through(new, source, kind, ufs, attrs)

    def _write_through(
        self, new: NewFile, source: BinaryIO, kind: WriteType, ufs: UfsTarget, attrs: UfsAttrs
    ) -> Inode:
        """To the UFS first; journaled once it has the bytes; cached as they pass if ``kind``
        caches."""
        mount, connector, rel = ufs
        self.placement.clear(mount, rel)
        status, blocks = self._to_store(new, source, kind, ufs, attrs)
        metrics.UFS_WRITTEN.add(status.size)
        old = new.existing()  # a rewrite (or a file made by create): its attributes go along
        status = carry_to_store(connector, rel, xattrs_of(old) if old else {}, status)
        ns = self.ns
        now = time.time_ns()
        # A small file's entry, its cached block (mark and entry) and the sync request go to
        # the journal's writer in one write, and the close waits for one sync of them all.
        small = blocks is not None and sum(map(len, blocks)) <= _HELD_WRITE_MAX
        with ns.gate.batched():
            with ns.lock:
                node = new.existing()
                replaced = node is not None  # its old blocks (maybe only copy) must not serve
                if node is None:
                    node = new.create(ns, now)
                mtime = now if attrs.mtime_ns is None else attrs.mtime_ns  # the store copy's
                entry = E.UfsFingerprint(
                    node.id, status.fingerprint, status.size, mtime, now, self.sync.block_size,
                    replaced,
                )  # fmt: skip
                seq = ns.gate.commit(entry)
            if small:
                try:
                    seq = max(seq, self._cache_blocks(node, blocks))
                except BaseException:  # the UFS has the bytes: their entry durable, as ever
                    ns.gate.sync(seq)
                    raise
            ns.gate.ask_sync(seq)
        ns.gate.sync(seq)  # THROUGH: durable at close (docs/operations.md)
        if node.nlink > 1:
            mirror_names(ns, self.sync, connector, node, mount, rel)
        if not small and blocks and self.cache is not None:
            for idx, block in enumerate(blocks):
                self.cache.store((node.id, node.version, idx), block)
        return node

    def _cache_blocks(self, node: Inode, blocks: list[bytes] | None) -> int:
        """The blocks of a file written CACHE_THROUGH cached, not waiting: the highest
        sequence number to wait for (0: none)."""
        seq = 0
        if blocks and self.cache is not None:
            for idx, block in enumerate(blocks):
                key = (node.id, node.version, idx)
                seq = max(seq, self.cache.store_nowait(key, block, None) or 0)
        return seq

    def _to_store(
        self, new: NewFile, source: BinaryIO, kind: WriteType, ufs: UfsTarget, attrs: UfsAttrs
    ) -> tuple[UfsStatus, list[bytes] | None]:
        """The bytes into the store: landed where the frontend spooled them in it already
        (engine/spools.py: written once), else copied there; the blocks to cache, if ``kind``
        caches."""
        mount, connector, rel = ufs
        caching = kind.caches and self.cache is not None
        spool = getattr(source, "spool", None)
        if isinstance(spool, StoreSpool) and spool.mount == mount:
            self._store_copy_first(new)
            with ufs_errors():
                status = connector.land(spool.staged, rel, attrs)
            bs = self.sync.block_size
            landed = [spool.read(at, bs) for at in range(0, status.size, bs)] if caching else None
            return status, landed
        blocks: list[bytes] | None = [] if caching else None
        tee = _Tee(source, blocks, self.sync.block_size) if blocks is not None else source
        stream = _Announced(tee, lambda: self._store_copy_first(new))
        with ufs_errors():
            status = connector.write(rel, stream, attrs)  # type: ignore[arg-type]
        return status, blocks

    def _store_copy_first(self, new: NewFile) -> None:
        """Before a write through the UFS can land over an existing file the state knows no
        copy of (its content only in the cache): StoreCopy, durable. A crash after the object
        landed and before the write's entry then leaves the copy remembered, so the file's
        next delete removes it instead of the listing bringing it back afterwards."""
        ns = self.ns
        with ns.lock:
            node = new.existing()
            if node is None or node.children is not None or store_may_hold(ns.state, node):
                return
            seq = ns.gate.commit(E.StoreCopy(node.id, E.STALE_COPY, time.time_ns()))
        ns.gate.sync(seq)  # before the store is written: docs/operations.md

    def before_store(self, node: Inode) -> UfsAttrs:
        """Before a write streamed into the store sends its first byte (ufs/s3parts.py), in a
        worker thread: the file's StoreCopy durable, as before any write through the UFS, and
        the owner and mode its store copy gets (those the write at close gives it)."""
        ns = self.ns
        seq = 0
        with ns.lock:
            if ns.tree.find(node.id) is not node or node.children is not None:
                raise NotFound(f"inode {node.id} is gone: nothing of it to store")
            if not store_may_hold(ns.state, node):
                seq = ns.gate.commit(E.StoreCopy(node.id, E.STALE_COPY, time.time_ns()))
            attrs = UfsAttrs(node.mode & 0o7777, node.uid, node.gid)
        if seq:
            ns.gate.sync(seq)  # before the store is written: docs/operations.md
        return attrs

    def _write_cached(
        self, new: NewFile, source: BinaryIO, kind: WriteType, mtime: int | None = None
    ) -> Inode:
        """The new content is staged as the file's next version beside its current one and
        committed with one entry (engine/cache/staging.py): a crash at any point leaves the
        old content or the new, whole. A write that fails leaves the file as it was (a file
        this write created goes)."""
        cache = self.cache
        if cache is None:
            raise InvalidArgument(f"write type {kind.name} needs a block cache")
        ns = self.ns
        node, created = self._target(cache, new, source, kind)
        staged: StagedVersion | None = None
        committed = False
        try:
            staged = StagedVersion(cache, node.id, ns.path_of(node))
            length, idx, last = self._stage(staged, source, kind)
            if len(last) > _HELD_WRITE_MAX:  # other threads' appends wait while it is held
                self._add(staged, idx, last, kind)
                last = b""
            # A small file's block mark and entry, the commit and the mtime in one pipe write
            # to the journal's writer, not four (held over one small block's write at most).
            with ns.gate.batched():
                if last:
                    self._add(staged, idx, last, kind)
                with ns.lock:
                    seq = staged.commit(length, self.sync.block_size, kind.persists_async)
                    committed = True
                    if mtime is not None:  # before the upload is queued: it carries the mtime
                        seq = ns.gate.commit(E.SetAttr(node.id, time.time_ns(), mtime=mtime))
        except BaseException:
            if staged is not None:
                staged.abort()
            if created and not committed:
                self._remove_new(node)
            raise
        ns.gate.durable(seq)
        if kind.persists_async and self.persister is not None:
            self.persister.submit(node.id, staged.version)
        return node

    def _stage(
        self, staged: StagedVersion, source: BinaryIO, kind: WriteType
    ) -> tuple[int, int, bytes]:
        """Stages ``source``'s bytes block by block but a short last one, which the commit's
        batch adds: the length of them all, the next block's index and that short block's
        bytes (b"": none). No read ahead: a block is staged as soon as it is whole."""
        bs = self.sync.block_size
        length = idx = 0
        while block := _read_full(source, bs):
            length += len(block)
            if len(block) < bs:  # a short block ends the source
                return length, idx, block
            self._add(staged, idx, block, kind)
            idx += 1
        return length, idx, b""

    @staticmethod
    def _add(staged: StagedVersion, idx: int, block: bytes, kind: WriteType) -> None:
        if not staged.add(idx, block):
            raise NoSpace(
                f"the cache has no room for {staged.what} (written {kind.name}): its tiers"
                " are full of pinned or unpersisted blocks; nothing of this write was kept"
            )

    def _target(
        self, cache: BlockCache, new: NewFile, source: BinaryIO, kind: WriteType
    ) -> tuple[Inode, bool]:
        """The file to write, created if it does not exist (and whether it was). An existing
        file keeps its content until the new one is committed, so both must fit: a write that
        clearly cannot is refused before anything is written."""
        ns = self.ns
        needed = _bytes_left(source)  # outside the lock: an fstat
        with ns.lock:
            node = new.existing()
            if node is None:
                return new.create(ns, time.time_ns()), True
            if needed is not None and not has_room_for(cache, node.id, needed):
                raise NoSpace(
                    f"the cache has no room for {ns.path_of(node)} (written {kind.name},"
                    f" {needed} bytes beside its current content): its tiers are full of pinned"
                    " or unpersisted blocks; the file keeps its content"
                )
            return node, False

    def _remove_new(self, node: Inode) -> None:
        """A file this write created goes with the write that failed: nothing half-written
        stays visible."""
        ns = self.ns
        with ns.lock:
            if ns.tree.find(node.id) is not node:
                return  # removed meanwhile
            path = ns.path_of(node)
        try:
            ns.delete(path)
        except NotFound:
            pass

    def persist(self, node: Inode) -> bool:
        """Queues the upload of a file whose data is only in the cache (written MUST_CACHE);
        False if there is nothing to upload."""
        if self.persister is None or node.children is not None:
            return False
        ns = self.ns
        with ns.lock:
            if node.flags & PERSISTED or self.sync.mount_of(node) is None:
                return False
            if ns.state.persists.get(node.id) != node.version:
                seq = ns.gate.commit(E.PersistRequested(node.id, node.version, time.time_ns()))
            else:
                seq = 0
            file, version = node.id, node.version
        if seq:
            ns.gate.durable(seq)
        self.persister.submit(file, version)
        return True


class _Tee:
    """Passes a source through while keeping its bytes as blocks (CACHE_THROUGH)."""

    def __init__(self, source: BinaryIO, blocks: list[bytes], block_size: int) -> None:
        self.source, self.blocks, self.block_size = source, blocks, block_size
        self.partial = b""

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.partial += data
        while len(self.partial) >= self.block_size or (not data and self.partial):
            self.blocks.append(self.partial[: self.block_size])
            self.partial = self.partial[self.block_size :]
        return data


class _Announced:
    """A source that calls ``first`` before it gives out its first bytes: what must be
    journaled before a connector can land anything (a connector that fails before it reads
    has written nothing, and then nothing was journaled either)."""

    def __init__(self, source: _Tee | BinaryIO, first: Callable[[], None]) -> None:
        self.source = source
        self.first: Callable[[], None] | None = first

    def read(self, size: int = -1) -> bytes:
        if self.first is not None:
            first, self.first = self.first, None
            first()
        return self.source.read(size)


def _bytes_left(source: BinaryIO) -> int | None:
    """How many bytes ``source`` has left to read, where it can tell (a regular file, bytes in
    memory, the mount's write spool); None for a pipe."""
    if isinstance(source, io.BytesIO):
        return len(source.getbuffer()) - source.tell()
    remaining = getattr(source, "remaining", None)
    if callable(remaining):
        return int(remaining())
    try:
        st = os.fstat(source.fileno())
        return st.st_size - source.tell() if stat.S_ISREG(st.st_mode) else None
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


def _read_full(source: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        chunk = source.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)

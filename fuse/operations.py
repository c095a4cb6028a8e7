"""The pyfuse3 frontend: kernel requests translated into engine calls, nothing decided here.

Shoal's inode ids are the kernel's inode numbers (the root is 1 in both, and ids are never
reused, so ``forget`` has nothing to free). Requests that only read memory or a local tier run
inline on the trio loop: attributes, lookups in loaded directories, listings, cache hits,
writes into a spool file. Everything that may block (a UFS, a journal fsync wait, a cache miss)
goes to a worker thread under a capacity limiter.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
from array import array
from collections.abc import Callable
from typing import Any, TypeVar

import pyfuse3
import trio

from engine.config import Config
from engine.engine import Engine
from engine.inode import PROVISIONAL, Inode
from engine.posix import Caller, access_time, check_write
from engine.spools import StoreSpool
from fuse.boundary import FlushNotNeeded, answers_errno
from fuse.handles import DirHandle, Handle, writes_around_pages
from fuse.invalidator import KernelInvalidator
from fuse.moreops import MoreOperations, caller_of
from fuse.writebuffer import BufferClosed, Closer, WriteBuffer

log = logging.getLogger(__name__)

T = TypeVar("T")

# What `cp`, `tar` and friends size their buffers by: one max_read request.
BLKSIZE = 1 << 20
# An open with none of these only reads (O_RDONLY is 0); O_TRUNC truncates even then.
_WRITES = os.O_ACCMODE | os.O_TRUNC


class ShoalOperations(MoreOperations, pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, engine: Engine, config: Config, spool_dir: str) -> None:
        super().__init__()
        self.engine = engine
        self.fs = engine.fs
        self.spool_dir = spool_dir
        self.entry_timeout = config.fuse_entry_timeout_s
        self.attr_timeout = config.fuse_attr_timeout_s
        self.limiter = trio.CapacityLimiter(config.fuse_max_threads)
        self.invalidator = KernelInvalidator()
        # FLUSH makes close(2) acknowledge written data: not needed read-only, or if configured off
        self.flush_on_close = config.fuse_flush_on_close and not self.fs.read_only_root()
        self.max_file_size = config.fuse_max_file_size
        self.xattrs = config.fuse_xattrs
        # Reads move access times (else noatime), never on a read-only mount (nothing to change)
        self.relatime = config.fuse_relatime and not self.fs.read_only_root()
        self.handles: dict[int, Handle] = {}
        self.dirs: dict[int, DirHandle] = {}
        self.buffers: dict[int, WriteBuffer] = {}  # inode -> its content being written
        self.closer = Closer()
        self._fh = itertools.count(1)

    # -- helpers -----------------------------------------------------------------------------

    async def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(fn, *args, **kwargs)
        return await trio.to_thread.run_sync(call, limiter=self.limiter)

    async def _kernel_change(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``_blocking`` for the change a kernel request asks for (mkdir, unlink, rename,
        ...): the kernel learns its outcome from the reply, so the entries it makes need no
        invalidation. Anything else found on the way (a sync during a lookup) still gets it."""
        mark = self.invalidator.from_kernel

        def as_kernel_request() -> T:
            mark(True)
            try:
                return fn(*args, **kwargs)
            finally:
                mark(False)

        return await self._blocking(as_kernel_request)

    async def _at_once(self, fn: Callable[..., T | None], *args: Any) -> T:
        """An engine call that takes ``wait``: answered on the loop if nothing makes it wait
        (None back), else in a worker thread."""
        done = fn(*args, wait=False)
        if done is None:
            done = await self._blocking(fn, *args, wait=True)
        return done  # type: ignore[return-value]

    def _attrs(self, node: Inode) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()  # its generation (ids are never reused) and st_rdev: 0
        a.st_ino = node.id
        # Provisional attributes: looked up again at each use, so that another user's is
        # answered with the store's (sticky directories, owners' chmod: the kernel decides
        # those on what it holds, without asking).
        # Nor kept: with default_permissions the kernel then asks (GETATTR) at every open's
        # permission check and every stat, which ``getattr`` answers with the store's.
        if node.flags & PROVISIONAL:
            a.entry_timeout = a.attr_timeout = 0
        else:
            a.entry_timeout, a.attr_timeout = self.entry_timeout, self.attr_timeout
        a.st_mode = node.mode
        a.st_nlink = self.fs.nlink(node)
        a.st_uid = node.uid
        a.st_gid = node.gid
        if node.ext is not None and node.ext.rdev:
            a.st_rdev = node.ext.rdev
        buffer = self.buffers.get(node.id)
        size = buffer.size if buffer is not None else node.size
        a.st_size = size
        a.st_blksize = BLKSIZE
        a.st_blocks = (size + 511) // 512
        mtime = buffer.mtime_ns if buffer is not None and buffer.dirty else node.mtime
        a.st_mtime_ns = mtime
        a.st_atime_ns = access_time(node)
        # Uncommitted writes changed the file; a committed mtime may lie ahead (utimens).
        a.st_ctime_ns = node.ctime if mtime == node.mtime else max(node.ctime, mtime)
        return a

    def _buffer(self, node: Inode, spool: StoreSpool | None = None) -> WriteBuffer:
        buffer = self.buffers.get(node.id)
        if buffer is None:
            read_old = functools.partial(self.fs.read_node, node)
            bs = self.fs.block_size_for(node)
            buffer = WriteBuffer(self.spool_dir, node.id, node.size, bs, read_old, spool)
            self.buffers[node.id] = buffer
        elif spool is not None:  # written already through another handle: that spool serves
            spool.drop()
        return buffer

    def _open_handle(self, node: Inode, buffer: WriteBuffer | None, read: bool = False) -> int:
        fh = next(self._fh)
        # read: as if read through already (noatime, or the open stands for its reads)
        self.handles[fh] = Handle(node.id, buffer, read or not self.relatime)
        # The engine decides what an unlink while open does, and when an upload may start
        self.fs.opened(node.id, writing=buffer is not None)
        if buffer is not None:
            buffer.handles += 1
        return fh

    # -- names and attributes ----------------------------------------------------------------

    @answers_errno
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        node = await self._at_once(self.fs.lookup_in, parent_inode, os.fsdecode(name))
        settle = self.fs.attrs_needed_at_lookup(node, ctx.uid)  # the engine's rule, per user
        if settle:
            # A kernel request: its reply carries them. Otherwise they are answered provisional,
            # kept for no time (_attrs): GETATTRs read them, outside the kernel's directory lock.
            await self._kernel_change(self.fs.settle_attrs, node)
        if node.flags & PROVISIONAL and self.invalidator.pending():
            await self._blocking(self.invalidator.drain)  # a load's: before the GETATTR
        a = self._attrs(node)
        if node.flags & PROVISIONAL and not settle:
            # The name is kept (its attributes are not: the GETATTR that its open or stat sends
            # completes them): else the pass after a cold one sends every file's LOOKUP again,
            # one at a time per directory.
            a.entry_timeout = self.entry_timeout
        return a

    async def forget(self, inode_list: Any) -> None:  # ids are never reused: nothing to free
        return None

    @answers_errno
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self.fs.inode(inode)
        if self.fs.attrs_needed(node, ctx.uid):  # the kernel asks before it refuses
            await self._kernel_change(self.fs.settle_attrs, node)
        return self._attrs(node)

    @answers_errno
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self.fs.inode(inode)
        if fields.update_size:
            await self._truncate(node, attr.st_size, fh)
        changes: dict[str, int] = {}
        if fields.update_mode:
            changes["mode"] = attr.st_mode
        if fields.update_uid:
            changes["uid"] = attr.st_uid
        if fields.update_gid:
            changes["gid"] = attr.st_gid
        if fields.update_mtime:
            changes["mtime"] = attr.st_mtime_ns
        if fields.update_atime:
            changes["atime"] = attr.st_atime_ns
        if changes:
            buffer = self.buffers.get(node.id)
            if "mtime" in changes and buffer is not None and buffer.dirty:
                # The content is still to be committed, which would stamp its own time: the
                # time asked for (tar, rsync -a, cp -p) is kept for the commit, the last word.
                buffer.mtime_ns, buffer.mtime_set = changes["mtime"], True
            await self._change_attrs(node.id, changes)
        return self._attrs(node)

    async def _truncate(self, node: Inode, size: int, fh: int | None) -> None:
        self.fs.check_truncate(node, size, self.max_file_size)
        handle = self.handles.get(fh) if fh is not None else None
        buffer = handle.buffer if handle is not None else None
        if buffer is not None:
            await self._blocking(buffer.truncate, size)
            return
        # A path-based truncate: the new content is committed at once.
        buffer = self._buffer(node)
        buffer.handles += 1
        try:
            await self._blocking(buffer.truncate, size)
            await self._commit(buffer)
        finally:
            self._drop_handle_of(buffer)

    def _buffer_of(self, fh: int) -> WriteBuffer | None:
        return self.handles[fh].buffer

    def _drop_handle_of(self, buffer: WriteBuffer) -> None:
        buffer.handles -= 1
        if buffer.handles == 0 and not buffer.dirty:
            self._retire(buffer)

    def abandon_writes(self) -> None:
        """At the daemon's stop, after the event loop ended: content never committed (files
        still open) is dropped, as a kill would drop it, and what it had begun in a store
        (S3's parts sent while it was written) is undone now, not left for a sweep."""
        for buffer in list(self.buffers.values()):
            buffer.abandon()
        self.closer.finish()  # store spools never landed: their temporary files go now

    def _retire(self, buffer: WriteBuffer) -> None:
        """Stops routing the inode's reads to the buffer and closes it once nobody uses it,
        in the closer's thread (a reader in a worker thread may still hold its lock, and
        closing a spool frees its file: never wait for either on the loop)."""
        if self.buffers.get(buffer.ino) is buffer:
            del self.buffers[buffer.ino]
        self.closer.close(buffer)

    # -- directories -------------------------------------------------------------------------

    @answers_errno
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = await self._at_once(self.fs.open_dir, inode)
        fh = next(self._fh)
        self.dirs[fh] = DirHandle(node.id, array("q"))  # listed by the first readdir
        return fh

    @answers_errno
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self.dirs[fh]
        if start_id == 0:  # (re)started from the top, as rewinddir does: a fresh listing
            handle.names, handle.ids = await self._at_once(self.fs.child_entries, handle.ino)
        directory = self.fs.find_inode(handle.ino)
        if directory is None or directory.children is None:
            return  # removed since opendir: an empty listing, as Linux gives one
        # "." and ".." at offsets 1 and 2; entry i of the listing at offset i + 3.
        parent = self.fs.find_inode(directory.parent) or directory
        reply = pyfuse3.readdir_reply
        for offset, dot, node in ((1, b".", directory), (2, b"..", parent)):
            if start_id < offset and not reply(token, dot, self._attrs(node), offset):
                return
        names, ids, children = handle.names, handle.ids, directory.children
        for i in range(max(0, start_id - 2), len(ids)):
            child = children.get(names[i])
            if child is None or child.id != ids[i]:
                continue  # removed, renamed or replaced since the listing started
            if not reply(token, os.fsencode(names[i]), self._attrs(child), i + 3):
                break

    async def releasedir(self, fh: int) -> None:
        self.dirs.pop(fh, None)

    @answers_errno
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        key = os.fsdecode(name)
        node = await self._kernel_change(self.fs.mkdir_as, caller_of(ctx), parent_inode, key, mode)
        return self._attrs(node)

    @answers_errno
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        key = os.fsdecode(name)
        await self._kernel_change(self.fs.rmdir_as, caller_of(ctx), parent_inode, key)

    @answers_errno
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        key = os.fsdecode(name)
        node = self.fs.child_of(parent_inode, key)
        held, gone = self._buffers_of(node), self._buffers_of(node, last_name=True)
        await self._kernel_change(
            self._quiesced, held, [], gone, self.fs.unlink_as, caller_of(ctx), parent_inode, key
        )

    def _buffers_of(self, *nodes: Inode | None, last_name: bool = False) -> list[WriteBuffer]:
        # last_name: only of files losing it (a hard-linked file's content stays with the rest)
        live = (n.id for n in nodes if n is not None and (not last_name or n.nlink == 1))
        return [b for b in map(self.buffers.get, live) if b is not None]

    def _quiesced(
        self,
        held: list[WriteBuffer],
        commit: list[WriteBuffer],
        discard: list[WriteBuffer],
        change: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """Runs a namespace change (rename, unlink) with the write buffers of the inodes it
        touches held: ``commit`` ones committed first (their content must reach the UFS under
        the old name before the name moves), ``discard`` ones dropped (their content goes
        away with the change). A commit racing the change could otherwise upload to a name
        that no longer is the file's, and journal it onto another inode. Locks are taken in
        inode order, so two changes cannot wait on each other."""
        with contextlib.ExitStack() as stack:
            for buffer in sorted({id(b): b for b in held}.values(), key=lambda b: b.ino):
                stack.enter_context(buffer.lock)
            for buffer in commit:
                self._commit_locked(buffer)
            result = change(*args, **kwargs)
            for buffer in discard:  # only once the change is done: a refused one keeps them
                buffer.dirty = False
            return result

    @answers_errno
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        old = parent_inode_old, os.fsdecode(name_old)
        new = parent_inode_new, os.fsdecode(name_new)
        noreplace = bool(flags & pyfuse3.RENAME_NOREPLACE)
        exchange = bool(flags & pyfuse3.RENAME_EXCHANGE)
        moving = self._buffers_of(self.fs.child_of(*old))
        target = None if noreplace else self.fs.child_of(*new)
        replaced, gone = self._buffers_of(target), self._buffers_of(target, last_name=True)
        await self._kernel_change(
            self._quiesced, moving + replaced, moving, gone,
            self.fs.rename_as, caller_of(ctx), old, new, noreplace=noreplace, exchange=exchange,
        )  # fmt: skip

    # -- files -------------------------------------------------------------------------------

    @answers_errno
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        key = os.fsdecode(name)
        # Only the name is journaled now; the content follows when it is committed.
        made = self._create_now(caller_of(ctx), parent_inode, key, mode)
        if made is None:
            node, spool = await self._kernel_change(
                self._create, caller_of(ctx), parent_inode, key, mode
            )
        else:
            node, spool = await self._spooled(*made)
        buffer = self._buffer(node, spool)
        buffer.dirty = True
        buffer.mtime_ns = node.mtime
        fh = self._open_writer(node, buffer, flags)
        return pyfuse3.FileInfo(fh=fh, direct_io=self.handles[fh].direct), self._attrs(node)

    def _create(
        self, caller: Caller, parent: int, name: str, mode: int
    ) -> tuple[Inode, StoreSpool | None]:
        """The file, and where its bytes are spooled if in its store (the engine decides)."""
        node = self.fs.create_as(caller, parent, name, mode)
        spool = self.fs.store_spool(node, self.spool_dir) if node.id not in self.buffers else None
        return node, spool

    @answers_errno
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if not flags & _WRITES:
            return self._open_reader(inode)
        node = self.fs.open_inode(inode, True)
        buffer = self._buffer(node)
        if flags & os.O_TRUNC and buffer.size:
            # A writer already while its truncate waits (a reader holds the buffer): the last
            # other writer's release meanwhile must not retire it, and the closer close it.
            buffer.handles += 1
            try:
                await self._blocking(buffer.truncate, 0)
            except BaseException:
                self._drop_handle_of(buffer)  # no handle will release it
                raise
            buffer.handles -= 1  # counted again as the handle's, at once
        fh = self._open_writer(node, buffer, flags)
        direct = self.handles[fh].direct
        # Pages that readers closed before it cached would be stale beside its writes: dropped.
        return pyfuse3.FileInfo(fh=fh, direct_io=direct, keep_cache=not direct)

    def _open_reader(self, ino: int) -> pyfuse3.FileInfo:
        node = self.fs.open_inode(ino, False)  # no thread, no journal entry
        # The kernel's pages are kept unless the content changed since they were filled, or is
        # being written through another handle; then the open stands for the reads they serve.
        keep = self.invalidator.keep_pages(ino) and ino not in self.buffers
        fh = self._open_handle(node, None, read=keep)
        if keep and self.relatime and self.fs.accessed(ino):
            self.invalidator.attributes_now(ino)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    def _open_writer(self, node: Inode, buffer: WriteBuffer, flags: int) -> int:
        """A handle writing through ``buffer``, around the page cache if it may (handles.py)."""
        direct = writes_around_pages(flags, self.fs.open_handles(node.id), buffer)
        fh = self._open_handle(node, buffer)
        if direct:
            self.handles[fh].direct = True
            buffer.direct_handles += 1
        return fh

    @answers_errno  # pyfuse3 replies with any buffer (a disk tier's hit is a bytearray)
    async def read(self, fh: int, off: int, size: int) -> bytes | bytearray:  # type: ignore[override]
        handle = self.handles[fh]
        if not handle.read:
            handle.read = True
            self.fs.accessed(handle.ino)  # relatime: rarely an entry, never a wait
        buffer = self.buffers.get(handle.ino)
        if buffer is not None:
            try:
                got = buffer.try_read(off, size)
                return got if got is not None else await self._blocking(buffer.read, off, size)
            except BufferClosed:
                pass  # committed and retired meanwhile: the engine has the content
        node = self.fs.still_there(handle.ino)  # unlinked or replaced while open: ESTALE
        data = self.fs.read_cached(node, off, size)  # a hit: served here, no thread
        if data is None:  # a local store's file in the kernel's caches: no thread either
            data = self.fs.read_resident(node, off, size)
        if data is None:
            version = node.version
            data = await self._blocking(self.fs.read_node, node, off, size)
            if node.version != version:  # changed meanwhile: the pages it fills may be stale
                self.invalidator.content_changed(handle.ino)
        return data

    @answers_errno
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self.handles[fh]
        buffer = handle.buffer
        check_write(buffer is not None, off, len(buf), self.max_file_size)
        assert buffer is not None
        written = buffer.try_write(off, buf)  # a pwrite to the spool: no thread needed
        if written is None:
            written = await self._blocking(buffer.write, off, buf)
        if handle.direct and self.fs.open_handles(handle.ino) > buffer.direct_handles:
            # Its bytes went around the pages another handle may read: they go before the
            # write is answered, so no read after it is served the old bytes (POSIX).
            await self._blocking(self.invalidator.pages_now, handle.ino)
        return written

    @answers_errno
    async def flush(self, fh: int) -> None:
        # close(2) waits for this: a closed file is durable as its write type says.
        if not self.flush_on_close:
            # ENOSYS once turns FLUSH off for the whole connection: a round trip less per
            # close (a third of a warm small-file read).
            raise FlushNotNeeded
        buffer = self.handles[fh].buffer
        if buffer is not None:
            await self._commit(buffer)

    @answers_errno
    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        buffer = handle.buffer
        try:
            if buffer is not None:
                await self._release_writer(buffer, handle.direct)
        finally:
            # Counted, no thread: only an orphan's last journals
            if self.fs.closed(handle.ino, writing=buffer is not None):
                await self._blocking(self.fs.release_orphan, handle.ino)

    async def _release_writer(self, buffer: WriteBuffer, direct: bool) -> None:
        try:
            await self._commit(buffer)  # normally done by flush already
        finally:
            buffer.direct_handles -= direct
            self._drop_handle_of(buffer)
            if buffer.handles == 0 and buffer.dirty:
                log.error("inode %d: new content could not be committed and is lost", buffer.ino)
                self._retire(buffer)

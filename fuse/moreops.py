"""More requests of the FUSE frontend (fuse/operations.py's ShoalOperations is built on this),
translation only: extended attributes (the rules are engine/xattrs.py's; pyfuse3 answers a
setxattr's XATTR_CREATE and XATTR_REPLACE itself, by a getxattr first, and the kernel a
zero-sized buffer and ERANGE), fallocate, fsync and fsyncdir (the journal's durability points),
the names that are not files or directories (symlink, link, mknod), and the answers read
from memory alone: readlink and statfs."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyfuse3

from engine.acls import ACL_NAMES
from engine.errors import InvalidArgument, NoAttribute
from engine.filesystem import FileSystem
from engine.inode import Inode
from engine.names import NAME_MAX
from engine.posix import Caller, check_fallocate
from engine.spools import StoreSpool
from fuse.boundary import answers_errno
from fuse.fallocate import FALLOC_FL_KEEP_SIZE
from fuse.invalidator import KernelInvalidator
from fuse.writebuffer import WriteBuffer

T = TypeVar("T")
# The kernel asks for it before every write(2) to a file, to clear file capabilities: never kept
# (security.* is not), and the answer must cost as little as a request can.
CAPABILITY = b"security.capability"


def caller_of(ctx: pyfuse3.RequestContext) -> Caller:
    return Caller(ctx.uid, ctx.gid, ctx.umask)


def _name(raw: bytes) -> str | None:
    """An attribute name as the namespace keeps it (UTF-8); None for one that is not."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


class MoreOperations:
    # ShoalOperations' (fuse/operations.py)
    fs: FileSystem
    xattrs: bool  # fuse.xattrs: False answers ENOSYS, which turns them off for the connection
    buffers: dict[int, WriteBuffer]
    spool_dir: str
    max_file_size: int
    invalidator: KernelInvalidator

    async def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError  # a worker thread

    async def _kernel_change(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError  # a change the kernel's caches must follow

    def _attrs(self, node: Inode) -> pyfuse3.EntryAttributes:
        raise NotImplementedError  # a node's attributes as the kernel gets them

    async def _truncate(self, node: Inode, size: int, fh: int | None) -> None:
        raise NotImplementedError  # a path-based truncate, committed at once

    def _buffer_of(self, fh: int) -> WriteBuffer | None:
        raise NotImplementedError  # the write buffer of an open file handle, if it writes

    @answers_errno
    async def fsync(self, fh: int, datasync: bool) -> None:
        buffer = self._buffer_of(fh)
        if buffer is not None:
            await self._commit(buffer)
        await self._durable()  # the log is ordered: every earlier change with it

    @answers_errno
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await self._durable()  # its entries, and every change acknowledged before them

    # -- content and attribute changes, acknowledged on the loop -----------------------------

    async def _commit(self, buffer: WriteBuffer, acknowledge: bool = True) -> int:
        """Hands a buffer's new content to the engine, durable as the file's write type says;
        the sequence number of its last entry (0: nothing committed). The thread only
        commits; the wait for the entries to be written is the loop's (``_acknowledged``),
        left to the caller with ``acknowledge`` False."""
        if not buffer.dirty:
            return 0
        seq = await self._blocking(self._commit_now, buffer)
        self.invalidator.content_changed(buffer.ino)  # the pages a writer left: not kept
        if acknowledge:
            await self._acknowledged(seq)
        return seq

    def _commit_now(self, buffer: WriteBuffer) -> int:
        with buffer.lock, self.fs.unacknowledged() as last:
            self._commit_locked(buffer)
        return last.seq

    def _commit_locked(self, buffer: WriteBuffer) -> None:
        """With ``buffer.lock`` held: its content to the engine, if it changed."""
        if not buffer.dirty:
            return
        # False back: unlinked while open, the content has nowhere to go but the buffer.
        mtime = buffer.mtime_ns if buffer.mtime_set else None
        self.fs.commit_content(buffer.ino, buffer.content, mtime)  # type: ignore[arg-type]
        buffer.dirty = False
        buffer.committed()

    async def _acknowledged(self, seq: int) -> None:
        """Returns once entry ``seq`` (and every earlier one) may be acknowledged."""
        await self.fs.acknowledged(seq, self._blocking)

    def _create_now(
        self, caller: Caller, parent: int, name: str, mode: int
    ) -> tuple[int, Inode] | None:
        """The create on the loop where the engine needs no wait but the entry's (no listing
        to load, the lock free): a thread's hop less per file of `tar x`."""
        mark = self.invalidator.from_kernel  # the reply tells the kernel: no invalidation
        mark(True)
        try:
            return self.fs.create_now(caller, parent, name, mode)
        finally:
            mark(False)

    async def _spooled(self, seq: int, node: Inode) -> tuple[Inode, StoreSpool | None]:
        """A file created on the loop, its spool in the store if its write type needs one
        (one made ahead, else made in a thread while its entry is written), once its entry
        is acknowledged."""
        spool = None
        if node.id not in self.buffers and self.fs.spools_in_store(node):
            spool = self.fs.spare_spool(node)  # made ahead: no thread, no file made now
            if spool is None:
                spool = await self._blocking(self.fs.store_spool, node, self.spool_dir)
            if spool is not None:
                self.fs.refill_spare(spool, node)
        try:
            await self._acknowledged(seq)
        except BaseException:
            if spool is not None:
                spool.drop()
            raise
        return node, spool

    async def _change_attrs(self, ino: int, changes: dict[str, int], after: int = 0) -> None:
        """chmod, chown, utimens: on the loop where the engine needs no wait but the entry's
        (a file not in its store yet, tar's before its close), else in a thread. ``after``:
        an entry committed just before (the content), acknowledged with it."""
        mark = self.invalidator.from_kernel  # the reply tells the kernel: no invalidation
        mark(True)
        try:
            seq = self.fs.setattr_now(ino, **changes)
        finally:
            mark(False)
        if seq is None:
            await self._acknowledged(after)  # even if the change is refused
            await self._kernel_change(self.fs.setattr_of, ino, **changes)
            return
        await self._acknowledged(max(seq, after))

    async def _durable(self) -> None:
        if not self.fs.all_durable():  # with durability "every_op", always: no thread
            await self._blocking(self.fs.make_durable)

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        if not self.xattrs:
            raise pyfuse3.FUSEError(errno.ENOSYS)
        if name == CAPABILITY:  # asked before every write(2): answered without a thing more
            raise pyfuse3.FUSEError(errno.ENODATA)
        return await self._getxattr(inode, name)

    @answers_errno
    async def _getxattr(self, inode: int, name: bytes) -> bytes:
        key = _name(name)
        if key is None:
            raise NoAttribute(f"inode {inode} has no attribute {name!r}")
        return self.fs.get_xattr(inode, key)

    @answers_errno
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        self._check_on()
        return [key.encode() for key in self.fs.list_xattrs(inode)]

    @answers_errno
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        self._check_on()
        key = _name(name)
        if key is None:
            raise InvalidArgument(f"attribute name {name!r} is not UTF-8")
        if key in ACL_NAMES:  # not through _kernel_change: the kernel's attributes are stale
            caller = Caller(ctx.uid, ctx.gid, ctx.umask)
            await self._blocking(self.fs.set_acl_as, caller, inode, key, value)
            return
        # A thread: the store may be written (a local file's xattr, an S3 object's metadata).
        await self._blocking(self.fs.set_xattr, inode, key, value)

    @answers_errno
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._check_on()
        key = _name(name)
        if key is None:
            raise NoAttribute(f"inode {inode} has no attribute {name!r}")
        if key in ACL_NAMES:
            self.fs.set_acl_as(Caller(ctx.uid, ctx.gid, ctx.umask), inode, key, None)
            return
        await self._blocking(self.fs.set_xattr, inode, key, None)

    def _check_on(self) -> None:
        if not self.xattrs:
            raise pyfuse3.FUSEError(errno.ENOSYS)

    @answers_errno
    async def fallocate(self, inode: int, mode: int, offset: int, length: int) -> None:
        """fallocate(2), routed here by fuse/fallocate.py: nothing is reserved (content is
        written when committed); mode 0 past the end grows the file as a truncate would."""
        node = self.fs.inode(inode)
        check_fallocate(mode, offset, length, FALLOC_FL_KEEP_SIZE)
        end, buffer = offset + length, self.buffers.get(node.id)
        if mode & FALLOC_FL_KEEP_SIZE or end <= (buffer or node).size:
            return
        self.fs.check_truncate(node, end, self.max_file_size)
        if buffer is None:
            await self._truncate(node, end, None)
        else:  # the open file's buffer: committed with its writes
            await self._blocking(buffer.truncate, end)

    @answers_errno
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return os.fsencode(self.fs.symlink_target(inode))

    @answers_errno
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        capacity, used, files = self.fs.space()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = capacity // 4096
        s.f_bfree = s.f_bavail = max(0, capacity - used) // 4096
        s.f_files = files + 1_000_000_000
        s.f_ffree = s.f_favail = 1_000_000_000
        s.f_namemax = NAME_MAX
        return s

    @answers_errno
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        key, link_to = os.fsdecode(name), os.fsdecode(target)
        node = await self._kernel_change(
            self.fs.symlink_as, caller_of(ctx), parent_inode, key, link_to
        )
        return self._attrs(node)

    @answers_errno
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        key = os.fsdecode(new_name)
        node = await self._kernel_change(
            self.fs.link_as, caller_of(ctx), inode, new_parent_inode, key
        )
        return self._attrs(node)

    @answers_errno
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        key = os.fsdecode(name)
        node = await self._kernel_change(
            self.fs.mknod_as, caller_of(ctx), parent_inode, key, mode, rdev
        )
        return self._attrs(node)

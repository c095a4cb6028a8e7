"""The in-memory file system of `shoal bench write`'s ceiling (cli/bench/writeceiling.py): it
accepts what `tar x` and a large sequential write ask of a file system, keeps files in memory,
does nothing else, and counts the requests it gets by kind.

Imported only by the process serving it: pyfuse3 stays out of the benchmark's own process.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import Counter
from typing import Any

import pyfuse3

TIMEOUT_S = 300.0  # Shoal's default fuse.entry_timeout_s and fuse.attr_timeout_s
BLKSIZE = 1 << 20  # as Shoal's: what `cp` and `tar` size their buffers by


class MemoryFS(pyfuse3.Operations):
    enable_writeback_cache = False  # as Shoal's: every write reaches the file system

    def __init__(self, xattrs: bool = True) -> None:
        super().__init__()
        self.xattrs = xattrs
        self.requests: Counter[str] = Counter()
        self.attrs: dict[int, Any] = {}
        self.entries: dict[int, dict[bytes, int]] = {}  # directory inode -> name -> inode
        self.data: dict[int, bytearray] = {}
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self._new(pyfuse3.ROOT_INODE, stat.S_IFDIR | 0o755, os.getuid(), os.getgid())

    def _new(self, ino: int, mode: int, uid: int, gid: int) -> Any:
        a = self.attrs[ino] = pyfuse3.EntryAttributes()
        now = time.time_ns()
        a.st_ino, a.st_mode, a.st_uid, a.st_gid = ino, mode, uid, gid
        a.st_nlink = 2 if stat.S_ISDIR(mode) else 1
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = now
        a.st_blksize = BLKSIZE
        a.entry_timeout = a.attr_timeout = TIMEOUT_S
        if stat.S_ISDIR(mode):
            self.entries[ino] = {}
        else:
            self.data[ino] = bytearray()
        return a

    def _add(self, parent: int, name: bytes, mode: int, ctx: Any) -> Any:
        if name in self.entries[parent]:
            raise pyfuse3.FUSEError(errno.EEXIST)
        ino, self.next_ino = self.next_ino, self.next_ino + 1
        self.entries[parent][name] = ino
        return self._new(ino, mode & ~ctx.umask, ctx.uid, ctx.gid)

    def regular_files(self) -> int:
        return len(self.data)

    def bytes_held(self) -> int:
        return sum(len(d) for d in self.data.values())

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        self.requests["lookup"] += 1
        ino = self.entries[parent_inode].get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.attrs[ino]

    async def forget(self, inode_list: Any) -> None:
        self.requests["forget"] += 1

    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        self.requests["getattr"] += 1
        return self.attrs[inode]

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any, ctx: Any) -> Any:
        self.requests["setattr"] += 1
        a = self.attrs[inode]
        if fields.update_size:
            del self.data[inode][attr.st_size :]
            self.data[inode].extend(bytes(attr.st_size - len(self.data[inode])))
            a.st_size = attr.st_size
        for field, name in (("update_mode", "st_mode"), ("update_uid", "st_uid"),
                            ("update_gid", "st_gid"), ("update_atime", "st_atime_ns"),
                            ("update_mtime", "st_mtime_ns")):  # fmt: skip
            if getattr(fields, field):
                value = getattr(attr, name)
                if name == "st_mode":
                    value = stat.S_IFMT(a.st_mode) | stat.S_IMODE(value)
                setattr(a, name, value)
        return a

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> Any:
        self.requests["mkdir"] += 1
        return self._add(parent_inode, name, stat.S_IFDIR | stat.S_IMODE(mode), ctx)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any) -> Any:
        self.requests["create"] += 1
        a = self._add(parent_inode, name, mode, ctx)
        return pyfuse3.FileInfo(fh=a.st_ino), a

    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        self.requests["open"] += 1
        if flags & os.O_TRUNC:
            self.data[inode].clear()
            self.attrs[inode].st_size = 0
        return pyfuse3.FileInfo(fh=inode)

    async def read(self, fh: int, off: int, size: int) -> Any:
        self.requests["read"] += 1
        return memoryview(self.data[fh])[off : off + size]

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self.requests["write"] += 1
        data = self.data[fh]
        if off == len(data):
            data += buf
        else:
            data.extend(bytes(max(0, off - len(data))))
            data[off : off + len(buf)] = buf
        self.attrs[fh].st_size = len(data)
        return len(buf)

    async def flush(self, fh: int) -> None:
        self.requests["flush"] += 1

    async def fsync(self, fh: int, datasync: bool) -> None:
        self.requests["fsync"] += 1

    async def release(self, fh: int) -> None:
        self.requests["release"] += 1

    async def opendir(self, inode: int, ctx: Any) -> int:
        self.requests["opendir"] += 1
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        self.requests["readdir"] += 1
        names = sorted(self.entries[fh].items())
        for i, (name, ino) in enumerate(names[start_id:], start_id + 1):
            if not pyfuse3.readdir_reply(token, name, self.attrs[ino], i):
                break

    async def releasedir(self, fh: int) -> None:
        self.requests["releasedir"] += 1

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        self.requests["fsyncdir"] += 1

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        self.requests["getxattr"] += 1
        # Shoal keeps extended attributes (fuse.xattrs): none here. ENOSYS, as Shoal with
        # fuse.xattrs = false, turns them off for the connection: the kernel stops asking.
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR if self.xattrs else errno.ENOSYS)

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self.requests["unlink"] += 1
        self.data.pop(self.entries[parent_inode].pop(name), None)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self.requests["rmdir"] += 1
        ino = self.entries[parent_inode][name]
        if self.entries[ino]:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        del self.entries[parent_inode][name], self.entries[ino]

    async def statfs(self, ctx: Any) -> Any:
        self.requests["statfs"] += 1
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 1 << 30
        s.f_files = s.f_ffree = s.f_favail = 1 << 30
        s.f_namemax = 255
        return s

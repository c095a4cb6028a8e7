"""The file-system facade: namespace operations that reach the mounted stores.

Below a mount, a mutation is carried out on the UFS first and journaled only once the UFS has
it: a failure (store down, access denied, disk full) leaves the namespace and the journal as
they were. A crash between the two leaves the UFS one step ahead; the next sync of that
directory reconciles it. This is the THROUGH write type: data goes to the UFS synchronously and
is not cached (the block cache adds the others). Outside every mount the operations are the
namespace's own.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from typing import BinaryIO

from engine import byinode, posix
from engine.cache.blockcache import BlockCache
from engine.errors import (
    AlreadyExists,
    Busy,
    DataLost,
    InvalidArgument,
    IsADirectory,
    NoSpace,
    NotADirectory,
    NotEmpty,
    NotFound,
)
from engine.inode import Inode
from engine.mounts import MountTable, ufs_errors
from engine.names import check_name, parent_and_name
from engine.namespace import Namespace
from engine.persister import Persister
from engine.posix import Caller
from engine.state import PERSISTED, Mount, block_size_of
from engine.sync import MetadataSync
from journal import entries as E
from ufs.base import UnderFS
from ufs.base import join as ufs_join
from ufs.errors import UfsNotFound


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
        self.write_type = write_type
        self.read_type = read_type
        self.readahead_blocks = 2  # the readahead window when a reader turns sequential
        self.readahead_max_blocks = 8  # how far it grows while the reader stays sequential
        # file -> (where its reads have reached, readahead window in blocks, last block
        # asked for by readahead)
        self._streams: dict[int, tuple[int, int, int]] = {}
        self._readers_lock = threading.Lock()
        self.persister: Persister | None = None

    def _target(self, path: str) -> tuple[Inode, str, tuple[Mount, UnderFS, str] | None]:
        """(parent directory, name, (mount, connector, UFS path) if below a mount)."""
        parents, name = parent_and_name(path)
        check_name(name)
        parent = self.sync.lookup("/" + "/".join(parents))
        if parent.children is None:
            raise NotADirectory(f"{'/' + '/'.join(parents)} is not a directory")
        where = self.sync.mount_of(parent)
        if where is None:
            return parent, name, None
        mount, rel = where
        self.ns.check_writable(parent)  # a read-only mount refuses before the UFS is touched
        return parent, name, (mount, self.mounts.connector(mount), ufs_join(rel, name))

    def path_type(self, node: Inode, which: str) -> str | None:
        """The read or write type (``which``: "read_type" or "write_type") set on ``node`` or
        its nearest ancestor that has one: a directory's type applies to the tree below it."""
        tree = self.ns.tree
        cur: Inode | None = node
        while cur is not None:
            ext = cur.ext
            if ext is not None:
                value = getattr(ext, which)
                if value:
                    return value
            if cur.parent == cur.id:
                return None
            cur = tree.find(cur.parent)
        return None

    def set_types(
        self, path: str, read_type: str | None = None, write_type: str | None = None
    ) -> Inode:
        """Sets (a type) or clears ("") the read and write types of ``path`` and the tree
        below it; None leaves one as it is."""
        changes: dict[str, str] = {}
        for which, value, known in (
            ("read_type", read_type, READ_TYPES),
            ("write_type", write_type, WRITE_TYPES),
        ):
            if value is None:
                continue
            value = value.upper()
            if value and value not in known:
                raise InvalidArgument(
                    f"unknown {which.replace('_', ' ')} {value!r} (one of {', '.join(known)})"
                )
            changes[which] = value
        if not changes:
            return self.sync.lookup(path)
        self.sync.lookup(path)  # loads what the path crosses
        return self.ns.setattr(path, **changes)

    def mount_of(self, path: str) -> Mount | None:
        """The mount that ``path`` (existing or not) would be stored in, if any."""
        parents, _name = parent_and_name(path)
        where = self.sync.mount_of(self.sync.lookup("/" + "/".join(parents)))
        return where[0] if where else None

    # -- directories -------------------------------------------------------------------------

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        parent, name, ufs = self._target(path)
        if name in parent.children:  # type: ignore[operator]
            raise AlreadyExists(f"{path} already exists")
        if ufs is not None:
            _mount, connector, rel = ufs
            with ufs_errors():
                connector.mkdir(rel)
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
                node = self.sync.lookup(built)
            except NotFound:
                node = self.mkdir(built, mode, uid, gid)
        return node

    # -- file content ------------------------------------------------------------------------

    def write_file(
        self,
        path: str,
        source: BinaryIO,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        write_type: str | None = None,
    ) -> Inode:
        """Creates or replaces ``path`` with ``source``'s bytes and returns once they are
        durable as the write type says (docs/cache.md):

        - THROUGH: in the UFS (not cached);
        - CACHE_THROUGH: in the UFS, and cached;
        - MUST_CACHE: in the cache only (never evicted, not persisted);
        - ASYNC_THROUGH: in the cache, with the persist to the UFS journaled as pending; the
          persister uploads it in the background, and resumes after a crash.
        """
        parent, name, ufs = self._target(path)
        if ufs is None:
            raise InvalidArgument(f"{path} is not below a mount: file data needs a UFS")
        mount, connector, rel = ufs
        existing = parent.children.get(name)  # type: ignore[union-attr]
        kind = (
            write_type
            or self.path_type(existing or parent, "write_type")
            or mount.options.get("write_type")
            or self.write_type
        ).upper()
        if kind not in WRITE_TYPES:
            raise InvalidArgument(f"unknown write type {kind!r} (one of {', '.join(WRITE_TYPES)})")
        if existing is not None and existing.children is not None:
            raise IsADirectory(f"{path} is a directory")
        if kind in ("MUST_CACHE", "ASYNC_THROUGH"):
            return self._write_cached(parent, name, source, mode, uid, gid, kind)
        blocks: list[bytes] | None = [] if kind == "CACHE_THROUGH" and self.cache else None
        stream = _Tee(source, blocks, self.sync.block_size) if blocks is not None else source
        with ufs_errors():
            status = connector.write(rel, stream)  # type: ignore[arg-type]
        ns = self.ns
        now = time.time_ns()
        with ns.lock:
            node = parent.children.get(name)  # type: ignore[union-attr]
            if node is None:
                ns.gate.commit(E.CreateFile(ns.tree.next_id, parent.id, name, mode, uid, gid, now))
                node = parent.children[name]  # type: ignore[index]
            entry = E.UfsFingerprint(
                node.id, status.fingerprint, status.size, now, now, self.sync.block_size
            )
            seq = ns.gate.commit(entry)
        ns.gate.durable(seq)
        if blocks and self.cache is not None:
            for idx, block in enumerate(blocks):
                self.cache.store((node.id, node.version, idx), block)
        return node

    def _write_cached(
        self, parent: Inode, name: str, source: BinaryIO, mode: int, uid: int, gid: int, kind: str
    ) -> Inode:
        cache = self.cache
        if cache is None:
            raise InvalidArgument(f"write type {kind} needs a block cache")
        ns = self.ns
        bs = self.sync.block_size
        restore: E.UfsFingerprint | None = None
        with ns.lock:
            node = parent.children.get(name)  # type: ignore[union-attr]
            now = time.time_ns()
            if node is None:
                ns.gate.commit(E.CreateFile(ns.tree.next_id, parent.id, name, mode, uid, gid, now))
                node = parent.children[name]  # type: ignore[index]
            else:
                fingerprint = node.ext.fingerprint if node.ext is not None else None
                if node.flags & PERSISTED and fingerprint:
                    # What the file goes back to if this write fails: its copy in the UFS.
                    restore = E.UfsFingerprint(node.id, fingerprint, node.size, node.mtime, 0)
                elif node.size:
                    # Its content is only in the cache: once the new version starts it is gone,
                    # so a write that clearly cannot fit is refused while it is still there.
                    needed = _bytes_left(source)
                    if needed is not None and not cache.has_room_for(node.id, needed):
                        raise NoSpace(
                            f"the cache has no room for {ns.path_of(node)} (written {kind},"
                            f" {needed} bytes): its tiers are full of pinned or unpersisted"
                            " blocks; the file keeps its content"
                        )
                ns.gate.commit(E.SetAttr(node.id, now, size=0))  # a new content version
            file, version = node.id, node.version
        length = 0
        try:
            idx = 0
            while block := _read_full(source, bs):
                if not cache.store((file, version, idx), block):
                    raise NoSpace(
                        f"the cache has no room for {ns.path_of(node)} (written {kind}):"
                        " its tiers are full of pinned or unpersisted blocks"
                    )
                length += len(block)
                idx += 1
        except BaseException:
            # Nothing half-written stays visible. A file the UFS holds goes back to that copy:
            # two fingerprint changes (a new content version each) leave none of this write's
            # blocks servable and the UFS's fingerprint recorded. Any other file goes, and its
            # blocks with it (its old content was only in the cache, which had no room).
            if restore is not None:
                with ns.lock:
                    now = time.time_ns()
                    ns.gate.commit(
                        restore._replace(fingerprint=restore.fingerprint + "~", time=now)
                    )
                    seq = ns.gate.commit(restore._replace(time=now))
                ns.gate.durable(seq)
            else:
                ns.delete(ns.path_of(node))
            raise
        with ns.lock:
            seq = ns.gate.commit(E.CompleteFile(file, length, bs, time.time_ns()))
            if kind == "ASYNC_THROUGH":
                seq = ns.gate.commit(E.PersistRequested(file, version, time.time_ns()))
        ns.gate.durable(seq)
        if kind == "ASYNC_THROUGH" and self.persister is not None:
            self.persister.submit(file, version)
        return node

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

    def read(self, path: str, offset: int, length: int, read_type: str | None = None) -> bytes:
        """Bytes of a file: cached blocks from their tier, the others from the UFS by ranged
        reads of whole blocks, which are cached as they pass (only the blocks touched)."""
        node = self.sync.lookup(path)
        if node.children is not None:
            raise IsADirectory(f"{path} is a directory")
        if read_type is None:
            data = self.read_cached(node, offset, length)  # a hit needs no read plan
            if data is not None:
                return data
        return self.read_node(node, offset, length, read_type)

    def _read_plan(self, node: Inode, read_type: str | None) -> tuple[Mount, str, str]:
        where = self.sync.mount_of(node)
        if where is None:
            raise InvalidArgument(f"{self.ns.path_of(node)} is not below a mount")
        mount, rel = where
        kind = (
            read_type
            or self.path_type(node, "read_type")
            or mount.options.get("read_type")
            or self.read_type
        ).upper()
        if kind not in READ_TYPES:
            raise InvalidArgument(f"unknown read type {kind!r} (one of {', '.join(READ_TYPES)})")
        return mount, rel, kind

    def read_cached(self, node: Inode, offset: int, length: int) -> bytes | None:
        """The bytes if every block they touch is in a local tier, else None; never waits on
        a UFS. The FUSE layer serves hits with this on its event loop (a ranged pread of a
        local file costs microseconds; a hop to a thread costs a hundred)."""
        cache = self.cache
        end = min(offset + length, node.size)
        if offset >= end:
            return b""
        if cache is None:
            return None
        bs = block_size_of(node) or self.sync.block_size
        first, last = offset // bs, (end - 1) // bs
        ino, version = node.id, node.version
        if first == last:
            data = cache.read((ino, version, first), offset - first * bs, end - offset, wait=False)
            if data is None:
                return None
            parts = [data]
        else:
            blocks = self.ns.state.blocks.get(ino, {})
            if any((version, idx) not in blocks for idx in range(first, last + 1)):
                return None  # a miss among them: read_node reads them all, none twice
            parts = []
            for idx in range(first, last + 1):
                start = idx * bs
                lo, hi = max(0, offset - start), min(bs, end - start)
                data = cache.read((ino, version, idx), lo, hi - lo, wait=False)
                if data is None:
                    return None
                parts.append(data)
        cache.stats.hits += len(parts)
        blocks = self.ns.state.blocks.get(ino, {})
        if len(cache.tiers) > 1:
            top = cache.tiers[0].name
            lower = [
                (ino, version, idx)
                for idx in range(first, last + 1)
                if (info := blocks.get((version, idx))) is not None and info.tier != top
            ]
            # Promoted if the read type asks: deciding costs two walks up the tree, done here
            # (a thread hop per hit of a lower tier would cost more); moving is for a thread.
            if lower and self._read_type_of(node) == "CACHE_PROMOTE":
                cache.fetcher.later(lambda: self._promote(lower))
        if self.readahead_blocks and node.flags & PERSISTED:
            # Decided here (cheap, and most reads start no batch); the rest (the read plan,
            # opening the connector, the block map) may wait: a readahead thread does it,
            # unless every block of the batch is cached already.
            batch = self._readahead_batch(node, bs, offset, end)
            if batch is not None and any(
                (version, idx) not in blocks for idx in range(batch[0], batch[1] + 1)
            ):
                cache.fetcher.later(lambda: self._fetch_ahead_planned(node, bs, batch))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_type_of(self, node: Inode) -> str | None:
        try:
            return self._read_plan(node, None)[2]
        except InvalidArgument:  # not below a mount, or a bad type: nothing to promote for
            return None

    def _promote(self, keys: list[tuple[int, int, int]]) -> None:
        assert self.cache is not None
        for key in keys:
            self.cache.promote(key)

    def read_node(
        self, node: Inode, offset: int, length: int, read_type: str | None = None
    ) -> bytes:
        """``read`` of a file already looked up (the FUSE layer knows inodes, not paths)."""
        mount, rel, kind = self._read_plan(node, read_type)
        persisted = bool(node.flags & PERSISTED)
        end = min(offset + length, node.size)
        if offset >= end:
            return b""
        connector = self.mounts.connector(mount)
        bs = block_size_of(node) or self.sync.block_size
        if self.cache is not None and kind != "NO_CACHE" and self.readahead_blocks:
            # Before this read's own blocks: the batch is on its way while they are fetched,
            # and readers of the same file in other threads, which ask for those blocks a
            # moment later, wait for its one request rather than each making their own.
            batch = self._readahead_batch(node, bs, offset, end)
            if batch is not None:
                self._fetch_ahead(node, connector, rel, bs, batch)
        parts = []
        for idx in range(offset // bs, (end - 1) // bs + 1):
            start = idx * bs

            def fetch(start: int = start) -> Iterator[bytes]:
                if not persisted:  # its only copy is the cache: a lost block is lost data
                    raise DataLost(
                        f"{self.ns.path_of(node)}: a block not yet persisted is missing"
                        " from the cache"
                    )
                with ufs_errors():
                    yield from connector.read_stream(rel, start, bs)

            lo, hi = max(0, offset - start), min(bs, end - start)
            if self.cache is None:
                parts.append(b"".join(fetch())[lo:hi])
                continue
            key = (node.id, node.version, idx)
            parts.append(
                self.cache.fetcher.get(
                    key, fetch, lo, hi - lo, kind != "NO_CACHE", min(bs, node.size - start)
                )
            )
            if kind == "CACHE_PROMOTE":
                self.cache.promote(key)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _readahead_batch(
        self, node: Inode, bs: int, offset: int, end: int
    ) -> tuple[int, int] | None:
        """The blocks to fetch ahead of this read, if a batch is due. A reader that continues
        where its last read ended is sequential: the blocks after its read are fetched before
        it asks for them, a window that starts at ``readahead_blocks`` and doubles up to
        ``readahead_max_blocks`` (JuiceFS and the kernel grow theirs the same way: a long
        stream needs many requests in flight to hide a store's latency, a short one wastes
        little)."""
        with self._readers_lock:
            last_end, window, issued = self._streams.get(node.id, (-1, 0, -1))
            # The kernel issues a sequential reader's requests several at a time, so they may
            # arrive a little out of order: within a block of where the last one ended counts.
            sequential = offset > 0 and last_end >= 0 and abs(offset - last_end) <= bs
            if offset == 0 and end >= STREAM_START:
                # A large read from the start (the kernel's readahead-sized request) is most
                # likely a stream: start its readahead now rather than after this block.
                sequential, window, last_end, issued = True, 0, end, -1
            if sequential:  # the window doubles while the reader stays sequential
                window = min(max(window * 2, self.readahead_blocks), self.readahead_max_blocks)
                last_end = max(last_end, end)
            else:
                window, last_end, issued = 0, end, -1
            current = (end - 1) // bs
            final = min((node.size - 1) // bs, current + window)
            # Like the kernel's readahead marker: a new batch only once the reader is past
            # half of what was asked for, so each batch is several blocks (requests are
            # costly; the bytes in them are not).
            start = max(issued + 1, current + 1)
            due = sequential and final >= start and issued - current < max(1, window // 2)
            if due:
                issued = final
            self._streams[node.id] = (last_end, window, issued)
            if len(self._streams) > 10_000:  # bounded: forget the oldest readers
                self._streams.pop(next(iter(self._streams)))
        if not due or not node.flags & PERSISTED:
            return None
        return start, final

    def _fetch_ahead_planned(self, node: Inode, bs: int, batch: tuple[int, int]) -> None:
        mount, rel, kind = self._read_plan(node, None)
        if kind != "NO_CACHE":
            self._fetch_ahead(node, self.mounts.connector(mount), rel, bs, batch)

    def _fetch_ahead(
        self, node: Inode, connector: UnderFS, rel: str, bs: int, batch: tuple[int, int]
    ) -> None:
        assert self.cache is not None
        first, last = batch

        def fetch(index: int, count: int) -> Iterator[bytes]:
            with ufs_errors():
                yield from connector.read_stream(rel, index * bs, count * bs)

        self.cache.fetcher.readahead(node.id, node.version, first, last, bs, fetch)

    # -- removal and renaming ----------------------------------------------------------------

    def delete(self, path: str, *, recursive: bool = False, directory: bool | None = None) -> None:
        """Removes ``path``; ``directory`` True only a directory (rmdir), False only a
        non-directory (unlink), None either."""
        parent, name, ufs = self._target(path)
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
            with ufs_errors():
                _remove_tree(connector, node, rel)
        self.ns.delete(path, recursive=recursive)

    def rename(self, src: str, dst: str, *, noreplace: bool = False) -> None:
        src_parent, src_name, src_ufs = self._target(src)
        dst_parent, dst_name, dst_ufs = self._target(dst)
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
        _mount, connector, a = src_ufs
        b = dst_ufs[2]
        with ufs_errors():
            if node.children is None:
                if node.flags & PERSISTED:
                    connector.rename(a, b)
            else:
                if existing is not None and existing.children:
                    raise NotEmpty(f"{dst} is a directory that is not empty")
                _move_tree(connector, node, a, b)
        self.ns.rename(src, dst, noreplace=noreplace)

    # -- calls from the FUSE frontend (engine/posix.py holds the rules) --
    # By inode id and name, on behalf of a Caller; engine/byinode.py applies the rules, then
    # makes the change through the path-based operations above.

    def inode(self, ino: int) -> Inode:
        return posix.inode(self.ns.tree, ino)

    def find_inode(self, ino: int) -> Inode | None:
        return self.ns.tree.find(ino)

    def lookup_in(self, parent_id: int, name: str, wait: bool = True) -> Inode | None:
        return byinode.lookup(self, parent_id, name, wait)

    def open_dir(self, ino: int, wait: bool = True) -> Inode | None:
        return byinode.open_dir(self, ino, wait)

    def child_ids(self, ino: int, wait: bool = True) -> array[int] | None:
        return byinode.child_ids(self, ino, wait)

    def child_of(self, parent_id: int, name: str) -> Inode | None:
        return byinode.child_of(self, parent_id, name)

    def symlink_target(self, ino: int) -> str:
        return posix.symlink_target(self.inode(ino))

    def mkdir_as(self, caller: Caller, parent_id: int, name: str, mode: int) -> Inode:
        return byinode.mkdir(self, caller, parent_id, name, mode)

    def create_as(self, caller: Caller, parent_id: int, name: str, mode: int) -> Inode:
        return byinode.create(self, caller, parent_id, name, mode)

    def symlink_as(self, caller: Caller, parent_id: int, name: str, target: str) -> Inode:
        return byinode.symlink(self, caller, parent_id, name, target)

    def link_as(self, caller: Caller, ino: int, parent_id: int, name: str) -> Inode:
        posix.refuse_hard_link()

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
        return byinode.setattr(self, ino, **changes)

    def open_inode(self, ino: int, writing: bool) -> Inode:
        node = self.inode(ino)
        posix.check_open(self.ns, node, writing)
        return node

    def check_truncate(self, node: Inode, size: int, limit: int) -> None:
        posix.check_truncate(self.ns, node, size, limit)

    def still_there(self, ino: int) -> Inode:
        return posix.still_there(self.ns.tree, ino)

    def block_size_for(self, node: Inode) -> int:
        return byinode.block_size(self, node)

    def commit_content(self, ino: int, content: Callable[[], BinaryIO]) -> bool:
        return byinode.commit_content(self, ino, content)

    def space(self) -> tuple[int, int, int]:
        return byinode.space(self)

    def read_only_root(self) -> bool:
        return byinode.read_only_root(self)


WRITE_TYPES = ("MUST_CACHE", "CACHE_THROUGH", "THROUGH", "ASYNC_THROUGH")
STREAM_START = 128 * 1024  # a first read this large, from offset 0, starts a readahead stream
READ_TYPES = ("CACHE", "CACHE_PROMOTE", "NO_CACHE")


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


def _walk(node: Inode, rel: str) -> Iterator[tuple[Inode, str]]:
    """(node, UFS path) of a subtree, children before their directory."""
    for name, child in sorted((node.children or {}).items()):
        yield from _walk(child, ufs_join(rel, name))
    yield node, rel


def _remove_tree(ufs: UnderFS, node: Inode, rel: str) -> None:
    for item, path in _walk(node, rel):
        try:
            if item.children is not None:
                ufs.rmdir(path)
            elif item.flags & PERSISTED:
                ufs.delete(path)
        except UfsNotFound:
            pass  # already gone from the UFS: the goal is reached


def _move_tree(ufs: UnderFS, node: Inode, src: str, dst: str) -> None:
    """A directory rename on the UFS: directories made, files renamed one by one, then the old
    directories removed (object stores have no directory rename)."""
    ufs.mkdir(dst)
    for item, path in _walk(node, src):
        target = dst + path[len(src) :]
        if item.children is not None:
            ufs.mkdir(target)
        elif item.flags & PERSISTED:
            ufs.rename(path, target)
    for item, path in _walk(node, src):
        if item.children is not None:
            try:
                ufs.rmdir(path)
            except UfsNotFound:
                pass

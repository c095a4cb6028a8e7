"""The read path: cached blocks from their tier, misses from the UFS, readahead.

A hit is served from a local tier without a read plan or a thread (``read_cached``: the FUSE
layer calls it on its event loop). A miss reads whole blocks from the UFS by ranged reads,
cached as they pass unless the read type says not to (engine/iotypes.py); a block read from a
lower tier moves up if the read type promotes. A reader that turns sequential has the blocks
after its read fetched before it asks for them, in a window that grows while it stays so.

A read that must reach the store is bounded as a whole (``read_deadline_s``, the config key
``ufs.read_deadline_s``): however many attempts the connector and the fetch path make, the
reader is answered by then, with Unavailable (EIO) if the store has not answered. Without it a
store that never answers holds a read for the connector's attempts times its timeout (150 s
with S3's defaults), and the kernel asks again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from engine.cache.blockcache import BlockCache
from engine.cache.fetch import READ_DEADLINE_S, Deadline
from engine.cache.promote import promote
from engine.errors import DataLost, InvalidArgument, IsADirectory
from engine.inode import PROVISIONAL, Inode
from engine.iotypes import ReadType
from engine.mounts import MountTable, ufs_errors
from engine.namespace import Namespace
from engine.placement import Placement
from engine.provisional import ProvisionalAttrs
from engine.state import PERSISTED, Mount, block_size_of
from engine.sync import MetadataSync
from ufs.uri import reads_locally

# A file up to this size has its provisional attributes completed by a GET of all of it rather
# than a HEAD (engine/provisional.py): on S3 both cost one round trip (first byte 15-30 ms, 256
# KiB ~3-5 ms more), and the GET leaves the bytes cached for the read that follows a stat.
SETTLE_BY_GET_MAX = 256 * 1024
STREAM_START = 128 * 1024  # a first read this large, from offset 0, starts a readahead stream


class ReadPath:
    def __init__(
        self,
        ns: Namespace,
        mounts: MountTable,
        sync: MetadataSync,
        cache: BlockCache | None,
        placement: Placement,
    ) -> None:
        self.ns = ns
        self.mounts = mounts
        self.sync = sync
        self.cache = cache
        self.placement = placement
        self.readahead_blocks = 2  # the readahead window when a reader turns sequential
        self.readahead_max_blocks = 8  # how far it grows while the reader stays sequential
        self.read_deadline_s = READ_DEADLINE_S  # a read that reaches the store ends by then
        # file -> (where its reads have reached, readahead window in blocks, last block
        # asked for by readahead)
        self._streams: dict[int, tuple[int, int, int]] = {}
        self._readers_lock = threading.Lock()
        # Told of every miss (engine/prefetch.py: a directory's first miss prefetches it).
        self.on_miss: Callable[[Inode, Mount, ReadType], None] | None = None
        self.provisional = ProvisionalAttrs(ns, mounts, sync)  # completed by a miss's GET

    def read(self, path: str, offset: int, length: int, read_type: str | None = None) -> bytes:
        """Bytes of a file: cached blocks from their tier, the others from the UFS by ranged
        reads of whole blocks, which are cached as they pass (only the blocks touched)."""
        node = self.sync.lookup(path)
        if node.children is not None:
            raise IsADirectory(f"{path} is a directory")
        if read_type is None:
            data = self.read_cached(node, offset, length)  # a hit needs no read plan
            if data is not None:  # (a disk tier's comes as a bytearray: callers here want bytes)
                return data if isinstance(data, bytes) else bytes(data)
        return self.read_node(node, offset, length, read_type)

    def read_cached(self, node: Inode, offset: int, length: int) -> bytes | bytearray | None:
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
            # Promoted if the read type asks: deciding costs one walk up the tree, done here
            # (a thread hop per hit of a lower tier would cost more); moving is for a thread.
            if lower and self._promotes(node):
                cache.fetcher.later(lambda: self._promote(lower))
        if self.readahead_blocks and last < (node.size - 1) // bs and node.flags & PERSISTED:
            # (A read that reaches the last block has nothing ahead of it: a small file's.)
            # Decided here (cheap, and most reads start no batch); the rest (the read plan,
            # opening the connector, the block map) may wait: a readahead thread does it,
            # unless every block of the batch is cached already.
            batch = self._readahead_batch(node, bs, offset, end)
            if batch is not None and any(
                (version, idx) not in blocks for idx in range(batch[0], batch[1] + 1)
            ):
                cache.fetcher.later(lambda: self._fetch_ahead_planned(node, bs, batch))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_resident(self, node: Inode, offset: int, length: int) -> bytes | None:
        """A miss answered on the event loop, no thread: a block of a local store's file whose
        names and bytes the kernel holds (a dataset read or written lately), read by system
        calls that cannot wait (ufs/resident.py), answered and offered to the storer as
        ``_read_local`` does. None if anything would wait, or for a read across blocks: the
        caller's thread then reads it (``read_node``)."""
        cache = self.cache
        end = min(offset + length, node.size)
        if cache is None or offset >= end or not node.flags & PERSISTED:
            return None
        bs = block_size_of(node) or self.sync.block_size
        idx = offset // bs
        if (end - 1) // bs != idx:
            return None
        try:
            mount, rel, kind = self.placement.read_plan(node, None)
        except InvalidArgument:  # not below a mount: read_node says so
            return None
        connector = self.mounts.opened(mount)  # opening one may wait: read_node's thread does
        if connector is None or not reads_locally(mount.uri):
            return None
        start = idx * bs
        data = cache.fetcher.read_nowait(
            (node.id, node.version, idx),
            lambda: connector.read_resident(rel, start, bs),
            offset - start, end - offset, kind.caches,
        )  # fmt: skip
        if data is not None:  # what read_node does around a miss, but never a promotion (I/O)
            if self.on_miss is not None:
                self.on_miss(node, mount, kind)
            # (A read of the file's last block has nothing ahead of it: a small file's.)
            if kind.caches and self.readahead_blocks and idx < (node.size - 1) // bs:
                batch = self._readahead_batch(node, bs, offset, end)
                if batch is not None:  # queued for readahead threads: no wait here
                    self._fetch_ahead(node, mount, rel, bs, batch)
        return data

    def _promotes(self, node: Inode) -> bool:
        try:
            return self.placement.read_type_of(node).promotes
        except InvalidArgument:  # not below a mount, or a bad type: nothing to promote for
            return False

    def _promote(self, keys: list[tuple[int, int, int]]) -> None:
        assert self.cache is not None
        for key in keys:
            promote(self.cache, key)

    def settle_attrs(self, node: Inode) -> None:
        """Completes ``node``'s provisional attributes now, for a GETATTR (an open's permission
        check, a stat) or the fsspec client's check (blocking: never on the event loop). A
        small file's GET brings them (its ``on_status``) with bytes its opener reads next: one
        round trip per cold file, not a HEAD and then a GET. A HEAD if that did not complete
        them (the block was cached, the object changed, the read type does not cache)."""
        if node.flags & PROVISIONAL and 0 < node.size <= SETTLE_BY_GET_MAX:
            if self.cache is not None and self.placement.read_plan(node, None)[2].caches:
                self.provisional.settle_by(node, lambda: self.read_node(node, 0, node.size))
        self.provisional.settle(node, durable=False)

    def read_node(
        self, node: Inode, offset: int, length: int, read_type: str | None = None
    ) -> bytes:
        """``read`` of a file already looked up (the FUSE layer knows inodes, not paths)."""
        mount, rel, kind = self.placement.read_plan(node, read_type)
        persisted = bool(node.flags & PERSISTED)
        end = min(offset + length, node.size)
        if offset >= end:
            return b""
        bs = block_size_of(node) or self.sync.block_size
        if self.on_miss is not None:
            self.on_miss(node, mount, kind)
        if self.cache is not None and kind.caches and self.readahead_blocks:
            # Before this read's own blocks: the batch is on its way while they are fetched,
            # and readers of the same file in other threads, which ask for those blocks a
            # moment later, wait for its one request rather than each making their own.
            batch = self._readahead_batch(node, bs, offset, end)
            if batch is not None:
                self._fetch_ahead(node, mount, rel, bs, batch)
        if self.cache is not None and persisted and reads_locally(mount.uri):
            return self._read_local(node, mount, rel, kind.caches, kind.promotes, offset, end)
        # Only a fetch from a store waits under a deadline (a local read is the kernel's).
        seconds = self.read_deadline_s
        deadline = Deadline(
            seconds,
            lambda: (
                f"{self.ns.path_of(node)}: {mount.uri} did not answer within {seconds:g} s"
                " (ufs.read_deadline_s); the store may be down or unreachable"
            ),
        )
        parts = []
        watch = self.provisional.watcher(node)
        for idx in range(offset // bs, (end - 1) // bs + 1):
            start = idx * bs

            def fetch(start: int = start) -> Iterator[bytes]:
                if not persisted:  # its only copy is the cache: a lost block is lost data
                    raise DataLost(
                        f"{self.ns.path_of(node)}: a block not yet persisted is missing"
                        " from the cache"
                    )
                # Opened here, on the fetch thread, within the deadline: opening a store
                # after a restart is a request too (S3: HEAD bucket).
                connector = self.mounts.connector(mount)
                with ufs_errors():
                    yield from connector.read_stream(rel, start, bs, watch)

            lo, hi = max(0, offset - start), min(bs, end - start)
            if self.cache is None:  # no home directory (the crash simulator): no fetch threads
                parts.append(b"".join(fetch())[lo:hi])
                continue
            key = (node.id, node.version, idx)
            parts.append(self.cache.fetcher.get(key, fetch, lo, hi - lo, kind.caches, deadline))
            if kind.promotes:
                promote(self.cache, key)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_local(
        self,
        node: Inode,
        mount: Mount,
        rel: str,
        caches: bool,
        promotes: bool,
        offset: int,
        end: int,
    ) -> bytes:
        """``read_node``'s misses from a store read by system calls (a local disk, NFS): each
        block read whole in this thread, the reader answered from it, the block stored in the
        background (engine/cache/storer.py). No deadline: a read of a local path is answered
        by the kernel, however long it takes (an NFS hard mount waits for its server)."""
        assert self.cache is not None
        fetcher = self.cache.fetcher
        connector = self.mounts.connector(mount)
        bs = block_size_of(node) or self.sync.block_size
        parts = []
        for idx in range(offset // bs, (end - 1) // bs + 1):
            start = idx * bs

            def read(start: int = start) -> tuple[bytes, str | None]:
                with ufs_errors():
                    return connector.read_checked(rel, start, bs)

            lo, hi = max(0, offset - start), min(bs, end - start)
            key = (node.id, node.version, idx)
            parts.append(fetcher.read_local(key, read, lo, hi - lo, caches))
            if promotes:
                promote(self.cache, key)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def store_missing(self, node: Inode) -> None:
        """The blocks of ``node``'s content not cached (the storer drops what its full queue
        cannot hold: engine/cache/storer.py) read and stored in this thread, for callers whose
        point is to cache: a load, an unlinked open file's content. Not with the namespace
        lock held."""
        cache = self.cache
        assert cache is not None
        bs = block_size_of(node) or self.sync.block_size
        have = self.ns.state.blocks.get(node.id, {})
        for idx in range(-(-node.size // bs)):
            if (node.version, idx) not in have:
                data = self.read_node(node, idx * bs, bs)
                cache.store((node.id, node.version, idx), data)

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
        mount, rel, kind = self.placement.read_plan(node, None)
        if kind.caches:
            self._fetch_ahead(node, mount, rel, bs, batch)

    def _fetch_ahead(
        self, node: Inode, mount: Mount, rel: str, bs: int, batch: tuple[int, int]
    ) -> None:
        assert self.cache is not None
        first, last = batch
        watch = self.provisional.watcher(node)

        def fetch(index: int, count: int) -> Iterator[bytes]:
            connector = self.mounts.connector(mount)  # on a readahead thread, not the reader's
            with ufs_errors():
                yield from connector.read_stream(rel, index * bs, count * bs, watch)

        self.cache.fetcher.readahead(node.id, node.version, first, last, bs, fetch)

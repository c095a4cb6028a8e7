"""Directory prefetch: when a reader starts on a directory of a read-only dataset, the
directory's other files are fetched into the cache in the background.

A training epoch reads every file of a class directory in a random order, one file per request
per reader: at a store's round trip (S3: 15-30 ms) the readers' parallelism bounds the epoch.
JuiceFS (``--prefetch``) and the kernel read ahead within a file; Alluxio preloads on command.
Here a reader's first miss in a directory is the sign: the directory's other files are fetched
by ``threads`` prefetch threads (the bound on what it adds to the store's load), at most
``dir_limit`` of them, each as one flight that readers missing the same block join instead of
asking again, and stored through the cache's one path (BlockCached through the gate, durable as
any miss's block).

Prefetch only uses free room: a block is stored only where its tier stays below ``watermark``
of its quota without evicting anything (cached blocks, pinned files' blocks, blocks of files
not yet persisted: none is ever pushed out for a guess); a file for which no tier it may use
has that room is skipped and counted (so, once the tiers are nearly full, every file is), and
remembered: when room frees (a block dropped, evicted, freed or cleared: BlockRemoved; files
deleted or unmounted, whose blocks are then collected), the skipped files are fetched again, in
the order they were skipped, as far as the room below the watermark goes. Still never evicting:
a reader's miss that evicts to make room in a full tier leaves it above the watermark, so
resuming finds no room and fetches nothing.
Files whose blocks are all cached or on their way are skipped; so are files whose TTL (or an
ancestor's) has passed, and files of read types that do not cache. ``close`` (unmount)
cancels what is queued and waits for the fetches under way.

The directory after it among its parent's, by name (a loader walking class folders in order
reaches it next), is listed too, if it was not: readers arriving there find its listing (a
LIST and, on S3 with POSIX metadata, a HEAD per entry) done rather than all waiting for it.
That listing ahead is metadata only, one request a directory: it is also made where the
files themselves are not prefetched (``-o prefetch=false``), unless ``-o list_ahead=false``.

Which mounts: read-only ones (``-o ro``, a dataset) of stores reached over a network (not a
local path: see ``prefetches``), unless the mount option ``prefetch`` says otherwise
(``prefetch=false`` turns it off for one mount, ``prefetch=true`` on for any other);
``cache.prefetch_threads = 0`` turns it off everywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

from engine.cache.blockcache import BlockCache
from engine.cache.fetch import READAHEAD_RUN
from engine.config import PREFETCH_DIR_LIMIT, PREFETCH_THREADS, PREFETCH_WATERMARK
from engine.errors import InvalidArgument
from engine.inode import PERSISTED, Inode
from engine.iotypes import ReadType
from engine.mounts import MountTable, mount_flag, ufs_errors
from engine.namespace import Namespace
from engine.placement import Placement
from engine.provisional import ProvisionalAttrs
from engine.state import Mount, block_size_of
from engine.sync import MetadataSync
from journal import entries as E
from ufs.uri import reads_locally

log = logging.getLogger(__name__)

_REMEMBERED = 100_000  # directories remembered as prefetched (oldest forgotten beyond)
# Entries after which a tier may have room again: a block dropped (evicted, freed, cleared),
# or files that went, whose blocks are room once collected.
_FREES_ROOM = frozenset((E.BlockRemoved, E.Delete, E.RemoveMount))


class DirectoryPrefetch:
    def __init__(
        self,
        ns: Namespace,
        mounts: MountTable,
        placement: Placement,
        sync: MetadataSync,
        cache: BlockCache,
        block_size: int,
        threads: int = PREFETCH_THREADS,
        dir_limit: int = PREFETCH_DIR_LIMIT,
        watermark: float = PREFETCH_WATERMARK,
    ) -> None:
        self.ns, self.mounts, self.placement, self.cache = ns, mounts, placement, cache
        self.sync = sync
        self.provisional = ProvisionalAttrs(ns, mounts, sync)
        self.block_size = block_size  # of files that carry none of their own
        self.threads, self.dir_limit, self.watermark = threads, dir_limit, watermark
        self._pool = ThreadPoolExecutor(threads, "prefetch") if threads > 0 else None
        self._done: OrderedDict[int, None] = OrderedDict()  # directories already planned
        self._listed: OrderedDict[int, None] = OrderedDict()  # only listed ahead from
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Files skipped for want of room, fetched when room frees (oldest forgotten beyond
        # _REMEMBERED); whether a resume is queued, and whether it is to collect garbage first.
        self._waiting: OrderedDict[int, None] = OrderedDict()
        self._resume_queued = self._collect = False
        if self._pool is not None:
            ns.gate.observers.append(self._observe)

    # -- the trigger -------------------------------------------------------------------------

    def on_miss(self, node: Inode, mount: Mount, kind: ReadType) -> None:
        """A reader missed a block of ``node`` (on the read path's thread): its directory is
        prefetched, the first time only, if its mount asks for it. Costs a few dict lookups."""
        if self._pool is None:
            return
        fetches = kind.caches and prefetches(mount)
        if not fetches and not lists_ahead(mount):
            return
        directory = node.parent
        # Directories only listed ahead are kept apart: a later miss there that caches (a
        # NO_CACHE path's read lists ahead only) still prefetches the directory.
        done = self._done if fetches else self._listed
        with self._lock:
            if self._closed or directory in done:
                return
            done[directory] = None
            if len(done) > _REMEMBERED:
                done.popitem(last=False)
        self._submit(self._plan if fetches else self._list_after, directory)

    def _submit(self, work: Callable[[int], None], arg: int) -> None:
        assert self._pool is not None
        with self._lock:
            if self._closed:
                return
            future = self._pool.submit(self._quietly, work, arg)
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    @staticmethod
    def _quietly(work: Callable[[int], None], arg: int) -> None:
        try:
            work(arg)
        except Exception as exc:  # a prefetch is a guess: its failure costs only the guess
            log.debug("prefetch failed: %s", exc)

    # -- planning and fetching ---------------------------------------------------------------

    def _plan(self, directory_id: int) -> None:
        """Queues the directory's files that are not all cached, in the listing's order."""
        directory = self.ns.tree.find(directory_id)
        if directory is None or directory.children is None or self._expired(directory):
            return
        queued = 0
        for child in list(directory.children.values()):  # a copy: the listing may change
            if queued >= self.dir_limit:
                break
            if child.children is None and child.flags & PERSISTED and child.size > 0:
                if self._missing(child):
                    self._submit(self._fetch_file, child.id)
                    queued += 1
        self._list_next(directory)

    def _list_after(self, directory_id: int) -> None:
        directory = self.ns.tree.find(directory_id)
        if directory is not None and directory.children is not None:
            self._list_next(directory)

    def _list_next(self, directory: Inode) -> None:
        """Lists the directory after ``directory`` in its parent (by name), if it is not
        loaded yet (on this prefetch thread: the readers' next directory is then ready when
        they arrive)."""
        parent = self.ns.tree.find(directory.parent)
        if parent is None or parent.children is None or parent.id == directory.id:
            return
        names = sorted(parent.children)  # as loaders order class folders (ImageFolder)
        try:
            after = names[names.index(directory.name) + 1 :]
        except ValueError:  # renamed or removed meanwhile
            return
        for name in after:
            sibling = parent.children.get(name)
            if sibling is not None and sibling.children is not None:
                if not self._closed and self.sync.needs_load(sibling):
                    self.sync.lookup(self.ns.path_of(sibling))
                return

    def _missing(self, node: Inode) -> list[int]:
        """The indexes of ``node``'s blocks not cached (nor being stored: the fetcher skips
        those in flight itself)."""
        bs = block_size_of(node) or self.block_size
        cached = self.ns.state.blocks.get(node.id, {})
        count = (node.size + bs - 1) // bs
        return [i for i in range(count) if (node.version, i) not in cached]

    def _fetch_file(self, file_id: int) -> None:
        node = self.ns.tree.find(file_id)
        if node is None or self._closed or not node.flags & PERSISTED:
            return
        missing = self._missing(node)
        if not missing or self._expired(node, ancestors=False):
            return
        bs = block_size_of(node) or self.block_size
        stats = self.cache.stats
        wanted = sum(min(bs, node.size - idx * bs) for idx in missing)  # a short last block
        if not self._has_room(node, wanted):
            stats.prefetch_skipped_space += 1
            self._wait_for_room(file_id)
            return
        try:
            mount, rel, kind = self.placement.read_plan(node, None)
        except InvalidArgument:  # moved out of its mount meanwhile
            return
        if not kind.caches:
            return

        watch = self.provisional.watcher(node)  # a GET brings the object's attributes too

        def fetch(index: int, count: int) -> Iterator[bytes]:
            connector = self.mounts.connector(mount)
            with ufs_errors():
                yield from connector.read_stream(rel, index * bs, count * bs, watch)

        for run in _runs(missing):
            if self._closed:
                return
            keys = [(node.id, node.version, idx) for idx in run]
            self.cache.fetcher.fetch_now(keys, bs, fetch, self.watermark)
        if self._missing(node):  # a block found the room gone when it was stored
            self._wait_for_room(file_id)

    # -- resuming when room frees -------------------------------------------------------------

    def _wait_for_room(self, file_id: int) -> None:
        with self._lock:
            self._waiting[file_id] = None
            if len(self._waiting) > _REMEMBERED:
                self._waiting.popitem(last=False)

    def _observe(self, entry: object) -> None:
        """Every committed entry (under the gate's lock: a few checks, no I/O): one that frees
        room queues one resume of the skipped files, if there are any."""
        kind = type(entry)
        if kind not in _FREES_ROOM or not self._waiting:
            return
        with self._lock:
            self._collect = self._collect or kind is not E.BlockRemoved
            if self._resume_queued or self._closed:
                return
            self._resume_queued = True
        self._submit(self._resume, 0)

    def _resume(self, _unused: int) -> None:
        """Queues the skipped files, oldest first, while their bytes fit below the watermark
        (each fetch checks again, and is skipped again if the room went meanwhile)."""
        with self._lock:
            self._resume_queued, collect = False, self._collect
            self._collect = False
            waiting = list(self._waiting)
        if collect:  # a deleted or unmounted file's blocks are room once their files go
            self.cache.collect_garbage()
        cache = self.cache
        with self.ns.lock:  # a drop frees its room in the same hold as it commits its entry
            room = sum(
                max(0, int(t.quota * self.watermark) - cache.used[t.name]) for t in cache.tiers
            )
        for file_id in waiting:
            node = self.ns.tree.find(file_id)
            wanted = 0 if node is None else sum(self._block_bytes(node, self._missing(node)))
            if wanted > room:
                continue  # a smaller one may fit
            room -= wanted
            with self._lock:
                self._waiting.pop(file_id, None)
            if wanted:
                self._submit(self._fetch_file, file_id)

    def _block_bytes(self, node: Inode, indexes: list[int]) -> list[int]:
        bs = block_size_of(node) or self.block_size
        return [min(bs, node.size - idx * bs) for idx in indexes]

    def _has_room(self, node: Inode, nbytes: int) -> bool:
        """Whether a tier ``node`` may use holds ``nbytes`` more below the watermark, without
        evicting (read without the lock: a guess; the store itself checks under it)."""
        media = node.ext.media if node.ext is not None else None
        cache = self.cache
        return any(
            cache.used[t.name] + nbytes <= t.quota * self.watermark
            for t in cache.tiers
            if not media or t.name in media
        )

    def _expired(self, node: Inode, ancestors: bool = True) -> bool:
        """Whether ``node``'s TTL (or, with ``ancestors``, one above it) has passed: the TTL
        checker is about to free or delete it, and fetching it would be wasted."""
        now = time.time_ns()
        cur: Inode | None = node
        while cur is not None:
            ext = cur.ext
            if ext is not None and ext.ttl_ms is not None:
                if cur.ctime + ext.ttl_ms * 1_000_000 <= now:
                    return True
            if not ancestors or cur.parent == cur.id:
                return False
            cur = self.ns.tree.find(cur.parent)
        return False

    # -- waiting and stopping ----------------------------------------------------------------

    def drain(self) -> None:
        """Waits until every prefetch queued so far has ended (tests, `shoal bench`)."""
        while True:
            with self._lock:
                pending = list(self._futures)
            if not pending:
                return
            wait(pending)

    def close(self) -> None:
        """Unmount: queued prefetches are dropped, those under way finish (each one flight
        of at most READAHEAD_RUN blocks: bounded by the connector's timeouts)."""
        with self._lock:
            self._closed = True
        if self._pool is not None:
            if self._observe in self.ns.gate.observers:
                self.ns.gate.observers.remove(self._observe)
            self._pool.shutdown(wait=True, cancel_futures=True)


def prefetches(mount: Mount) -> bool:
    """Whether a miss on ``mount`` prefetches its directory: as its ``prefetch`` option says;
    without one, for a read-only mount of a store reached over a network. Not for a local
    path's store: its files are read by the readers themselves at about what a prefetch
    spends on each (nothing of a thread's, when the kernel holds them: ufs/resident.py), so
    a prefetch there only adds CPU; measured, 400 µs a file on a 2-core machine."""
    if "prefetch" not in mount.options and reads_locally(mount.uri):
        return False
    return mount_flag(mount, "prefetch")


def lists_ahead(mount: Mount) -> bool:
    """Whether a miss on ``mount`` lists the directory after its own ahead of the readers: as
    its ``list_ahead`` option says; without one, wherever the files are prefetched, and on
    any read-only mount of a store reached over a network (a listing there is a round trip
    every reader arriving in the directory waits for: ~90 ms on S3 at 20 ms)."""
    if "list_ahead" in mount.options:
        return mount_flag(mount, "list_ahead")
    return prefetches(mount) or (mount.readonly and not reads_locally(mount.uri))


def _runs(indexes: list[int]) -> list[list[int]]:
    """Consecutive indexes in runs of up to READAHEAD_RUN: one request each."""
    runs: list[list[int]] = []
    for idx in indexes:
        if runs and runs[-1][-1] == idx - 1 and len(runs[-1]) < READAHEAD_RUN:
            runs[-1].append(idx)
        else:
            runs.append([idx])
    return runs

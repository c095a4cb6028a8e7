"""A rewrite's new content, staged beside the old until one entry makes it the file's.

A file written through the cache (MUST_CACHE, ASYNC_THROUGH) gets its new content as a new
version: the one above the file's current version. Its blocks are written (durably, on disk
tiers) and journaled as BlockCached of that *staged* version while the file stays at its old
version, so every read still serves the old content. Once all are there, one ContentCommitted
entry switches the file to the staged version — new size, its blocks, complete, the persist
pending if the type uploads — and drops the old version's blocks. A crash before that entry is
durable leaves the old content and some staged blocks of a version the file never reached:
the next start drops them (engine/cache/reconcile.py) and `shoal fsck` names them until then.
A crash after it leaves the new content whole: the entry is only admitted when every block of
the staged version is in the map (engine/state.py ``staged_problem``).

Only the rewrite stages its version: ``BlockCache.staging`` keeps other writers of those block
files out, and a second rewrite of the same file waits for the first to finish. Should the
file change otherwise meanwhile (truncated, its UFS copy synced, deleted), the rewrite gives up
and its staged blocks go; the file keeps what the other change made of it.
"""

from __future__ import annotations

import time
import zlib

from engine.cache.blockcache import BlockCache
from engine.errors import Busy, NotFound
from journal import entries as E


class StagedVersion:
    """The staged version of one file's new content, from its first block to its commit or
    abort. Made (and waited for, if another rewrite of the file stages) without the lock."""

    def __init__(self, cache: BlockCache, file: int, what: str) -> None:
        self.cache = cache
        self.file = file
        self.what = what  # the file's path, for messages
        self.blocks: dict[int, tuple[str, int]] = {}  # index -> (tier, length), files written
        self.done = False
        with cache.ns.lock:
            while file in cache.staging:
                cache.staging_done.wait()
            node = cache.ns.tree.find(file)
            if node is None:
                raise NotFound(f"{what} was removed before its new content was written")
            self.base = node.version
            self.version = node.version + 1
            cache.staging[file] = self.version

    def _check(self) -> None:
        """With the lock held: the file is still at the version this rewrite started from."""
        node = self.cache.ns.tree.find(self.file)
        if node is None:
            raise NotFound(f"{self.what} was removed while its new content was being written")
        if node.version != self.base:
            raise Busy(
                f"{self.what} changed while its new content was being written (truncated,"
                " synced from its UFS or rewritten): this write was not kept"
            )

    def add(self, idx: int, data: bytes) -> bool:
        """Writes block ``idx`` of the staged version into the highest tier that has or can
        make room (durable before its entry is: journal/datasync.py), and journals it (not
        waiting: the commit's entry comes later in the log and is waited for); False if no
        tier can hold it."""
        cache, ns = self.cache, self.cache.ns
        key = (self.file, self.version, idx)
        n, start = len(data), 0
        while True:
            with ns.lock:
                self._check()
                i = cache.reserve(self.file, n, start)
            cache.run_evictions()  # the room's victims moved or deleted, outside the lock
            if i is None:
                return False
            tier = cache.tiers[i]
            try:
                # Outside the lock. Synced here unless the journal syncs the tier before the
                # log that names it (journal/datasync.py): then the close waits for no fsync.
                ordered = cache.ns.gate.orders_data
                tier.write(key, data, durable=not ordered)
                if ordered:
                    cache.ns.gate.data_written()
                break
            except OSError:  # a full disk, a deleted directory: the next tier
                with ns.lock:
                    cache.used[tier.name] -= n
                start = i + 1
        self.blocks[idx] = (tier.name, n)
        with ns.lock:
            self._check()
            ns.gate.commit(E.BlockCached(*key, tier.name, n, zlib.crc32(data), time.time_ns()))
        return True

    def commit(self, length: int, block_size: int, persist: bool) -> int:
        """With the lock held: makes the staged version the file's content (one entry); its
        sequence number, to wait for outside the lock."""
        cache = self.cache
        self._check()
        seq = cache.ns.gate.commit(
            E.ContentCommitted(self.file, self.version, length, block_size, persist, time.time_ns())
        )
        for idx, (tier, n) in self.blocks.items():
            cache.adopt((self.file, self.version, idx), tier, n)
        self._release()
        return seq

    def abort(self) -> None:
        """Drops what was staged (journaled before the files go); the file keeps its content.
        Does nothing after a commit. However it ends, the file may be rewritten again."""
        if self.done:
            return
        cache, ns = self.cache, self.cache.ns
        try:
            seq = 0
            with ns.lock:
                for idx, (tier, n) in self.blocks.items():
                    cache.used[tier] -= n
                    if cache.info((self.file, self.version, idx)) is not None:
                        seq = ns.gate.commit(
                            E.BlockRemoved(self.file, self.version, idx, time.time_ns())
                        )
            if seq:
                ns.gate.durable(seq)
            for idx, (tier, _n) in self.blocks.items():
                cache.by_name[tier].remove((self.file, self.version, idx))
        finally:
            with ns.lock:
                self._release()

    def _release(self) -> None:
        """With the lock held: other writers may use this version's block files again."""
        self.done = True
        if self.cache.staging.get(self.file) == self.version:
            del self.cache.staging[self.file]
        self.cache.staging_done.notify_all()

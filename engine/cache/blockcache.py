"""The tiered block cache: which blocks are where, how room is made, and how reads use it.

The journal's block map (``State.blocks``: file -> {(version, index): BlockInfo}) is the truth;
this object adds what need not survive a restart: bytes used per tier and the recency order
the evictor follows. Every change is journaled like any other mutation — BlockCached and
BlockMoved after the file is durable under its final name, BlockRemoved *before* the file is
deleted — so a crash at any point leaves at worst an orphan, which ``reconcile`` removes.

Blocks are keyed by (file id, content version, index). A file whose UFS fingerprint changed
has a new version, so a block of the old content can never be served; its files are collected
lazily (they no longer appear in the block map). Every read of a cached block checks its length
and CRC-32 against the map; a block that fails (corrupted, truncated, or its tier directory
deleted) is dropped and fetched again: the cache never serves wrong bytes. A rewrite's blocks
are staged under the version above their file's (engine/cache/staging.py): in the map, never
served, outside the eviction order until the rewrite commits them.

Eviction: to make room in a tier, the first evictable block in the policy's order (LRU or
LRFU, engine/cache/eviction.py) is demoted to the next tier, or dropped from the last; under
the namespace lock only the decisions and entries, the copies and deletions after it
(engine/cache/evicting.py). Blocks of pinned files and of files not persisted in a UFS are
never evicted; the latter are kept off volatile tiers too (engine/cache/media.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import overload

from engine.cache import checked, nowait
from engine.cache.crc import crc32
from engine.cache.evicting import Move, Pending
from engine.cache.eviction import eviction_policy
from engine.cache.fetch import BlockFetcher
from engine.cache.media import durable_tiers, media_of, tiers_for
from engine.cache.reconcile import ReconcileReport, reconcile
from engine.cache.stats import CacheStats
from engine.cache.tiers import BlockKey, TierStore, Written
from engine.cache.usage import tier_usage
from engine.inode import PERSISTED, PINNED, Inode
from engine.namespace import Namespace
from engine.state import BlockInfo
from journal import entries as E

log = logging.getLogger(__name__)


# Hits recorded for the eviction order between two uses of it. A hit takes no lock: it appends
# to this buffer, and whoever next needs the order (an eviction, a store, a promotion) applies
# the buffer first, under the namespace lock, in order. Beyond this many, the oldest hits are
# forgotten (Caffeine's read buffer does the same): the order is then a little less exact.
ACCESS_BUFFER = 1 << 16
# Blocks up to this long are checked on first read even where the reader may not wait (the FUSE
# event loop): a CRC-32 of 128 KiB costs ~30 µs, a hop to a worker thread ~110 µs more.
INLINE_CHECK = 256 * 1024


class BlockCache:
    def __init__(
        self,
        ns: Namespace,
        tiers: list[TierStore],
        evictor: str = "LRU",
        lrfu_half_life_s: float = 300.0,
        checked_path: str | None = None,
    ) -> None:
        self.policy = eviction_policy(evictor, lrfu_half_life_s)
        self.evictor = self.policy.name
        self.ns = ns
        self.tiers = tiers
        self.by_name = {t.name: t for t in tiers}
        self.stats = CacheStats()
        # Per tier: bytes used, and keys from least to most recently used (key -> length).
        self.used, self.lru = tier_usage(ns, [t.name for t in tiers])
        self._verified: dict[BlockKey, tuple[int, int, int]] = {}  # block -> checked stamp
        self._accesses: deque[tuple[BlockKey, str, float]] = deque(maxlen=ACCESS_BUFFER)
        self.fetcher = BlockFetcher(self)
        # Eviction's file work, queued under the lock, done outside it (engine/cache/evicting.py).
        self.pending = Pending(ns.gate)
        # file -> the version a rewrite is staging for it (engine/cache/staging.py). Its blocks
        # are the rewrite's alone until it commits or gives up: no other block of that version
        # is written, and one rewrite of a file stages at a time (the next waits on this).
        self.staging: dict[int, int] = {}
        self.staging_done = threading.Condition(ns.lock)
        # Checks carried over a clean restart for volatile tiers (engine/cache/checked.py).
        self.checked_path, self.volatile = checked_path, {t.name for t in tiers if not t.spec.sync}
        if checked_path is not None:
            checked.restore(checked_path, self._verified, self.info, self.volatile)

    # -- lookups -----------------------------------------------------------------------------

    def info(self, key: BlockKey) -> BlockInfo | None:
        return self.ns.state.blocks.get(key[0], {}).get((key[1], key[2]))

    @overload
    def read(self, key: BlockKey, offset: int = 0, length: int = -1) -> bytes | None: ...
    @overload
    def read(
        self, key: BlockKey, offset: int = 0, length: int = -1, *, wait: bool
    ) -> bytes | bytearray | None: ...
    def read(
        self, key: BlockKey, offset: int = 0, length: int = -1, *, wait: bool = True
    ) -> bytes | bytearray | None:
        """``length`` bytes (all with -1) from ``offset`` of cached block ``key``; None if it
        is not cached (or was, and failed its check: then it is dropped).

        A block file is checked (length, CRC-32) the first time it is read and whenever its
        (size, mtime, inode) stamp changed since: a rewritten, truncated or replaced file is
        caught; an unchanged one is served by a ranged read of just the bytes asked for.
        ``wait`` False (the FUSE event loop): None rather than read bytes not in the page cache,
        check a block longer than ``INLINE_CHECK`` or drop a damaged one (all may wait: on the
        disk, on the namespace's lock); a worker thread then does it with ``wait``."""
        # No lock: a dict lookup is atomic, and a block dropped or replaced meanwhile shows as
        # a missing file or a changed stamp, both caught below. Hits from many threads (and
        # from the FUSE event loop) never queue on the namespace's lock.
        info = self.info(key)
        if info is None:
            return None
        tier = self.by_name.get(info.tier)
        end = info.length if length < 0 else min(info.length, offset + length)
        data: bytes | bytearray | None = None
        try:
            if tier is None:
                raise OSError(f"no tier {info.tier} is configured")
            opened, st = tier.files.take(key)
            try:
                stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
                if self._verified.get(key) == stamp:
                    data = nowait.pread(opened.fd, end - offset, offset, st.st_dev, wait)
                elif not wait and info.length > INLINE_CHECK:
                    return None
                else:
                    whole = nowait.pread(opened.fd, info.length, 0, st.st_dev, wait)
                    if whole is None:
                        return None  # not all in the page cache: a worker thread reads it
                    if st.st_size == info.length == len(whole) and crc32(whole) == info.checksum:
                        self._verified[key] = stamp
                        data = whole if end - offset == len(whole) else whole[offset:end]
                    else:
                        log.warning("cached block %s in %s failed its check", key, info.tier)
            finally:
                tier.files.give_back(opened)
        except OSError as exc:
            log.warning("cached block %s unreadable in %s: %s", key, info.tier, exc)
        if data is None or len(data) != end - offset:
            if not wait:
                return None
            with self.ns.lock:
                self._verified.pop(key, None)
                if self.info(key) == info:
                    self.drop(key, info, later=True)
            self.run_evictions()
            return None
        self._accesses.append((key, info.tier, time.monotonic() if self.policy.timed else 0.0))
        hits = self.stats.tier_hits
        hits[info.tier] = hits.get(info.tier, 0) + 1
        return data

    def apply_accesses(self) -> None:
        """With the namespace lock held: the hits recorded since the last call, in the order
        they happened, moved into the eviction order."""
        pop = self._accesses.popleft
        while True:
            try:
                key, tier, when = pop()
            except IndexError:
                return
            lru = self.lru.get(tier)
            if lru is not None and key in lru:
                lru.move_to_end(key)
                self.policy.touch(key, when)

    def _victims(self, tier: str) -> list[BlockKey]:
        """A tier's blocks in the eviction policy's order."""
        self.apply_accesses()
        return self.policy.order(list(self.lru[tier]))

    # -- the fetch path lives in engine/cache/fetch.py (self.fetcher) ------------------------
    def drain(self) -> None:
        self.fetcher.drain()

    def close(self) -> None:
        self.fetcher.close()
        self.collect_garbage()
        if self.checked_path is not None:
            checked.keep(self.checked_path, self._verified, self.info, self.volatile)
        for tier in self.tiers:
            tier.files.close()

    def collect_garbage(self) -> int:
        """Deletes the files of blocks whose file changed or went (their map entries left
        with the apply that did it, which does no I/O). Eviction collects them as it meets
        them; a clean shutdown collects the rest, so it leaves no orphans for fsck."""
        removed = 0
        with self.ns.lock:
            for tier in self.tiers:
                lru = self.lru[tier.name]
                for key in [k for k in lru if self.evictable(k) is None]:
                    self.used[tier.name] -= lru.pop(key)
                    # Once what made it garbage is durable (docs/operations.md), unlocked.
                    self.pending.unlink(tier, key, None)
                    removed += 1
        self.run_evictions()
        return removed

    # -- storing and making room -------------------------------------------------------------

    def store(
        self, key: BlockKey, data: bytes, fingerprint: str | None = None, below: float | None = None
    ) -> bool:
        """Caches ``data`` as block ``key`` in the highest tier that has (or can make) room;
        False if none can (the caller still has the bytes), or if they are not the version's:
        its file changed or went, or they came from a UFS file of another ``fingerprint``.
        ``below`` (a prefetch): only in a tier that stays under that share of its quota
        without evicting.

        A block of a file whose content is not persisted is the only copy of acknowledged
        data: it goes to a durable tier (``sync``), never to a volatile one (MEM on /dev/shm,
        which a reboot empties). Raises NoSpace if the file may use no durable tier."""
        seq = self.store_nowait(key, data, fingerprint, below)
        if seq:
            self.ns.gate.durable(seq)
        return seq is not None

    def store_nowait(
        self, key: BlockKey, data: bytes, fingerprint: str | None, below: float | None = None
    ) -> int | None:
        """``store`` without the wait: BlockCached's seq (0: none to wait for), None: not cached."""
        written = self.write_block(key, data, fingerprint, below)
        if not isinstance(written, Written):
            return written
        with self.ns.lock:
            return self.commit_block(written)

    def write_block(
        self, key: BlockKey, data: bytes, fingerprint: str | None, below: float | None = None
    ) -> Written | int | None:
        """``store_nowait``'s first half, outside the lock: the block file written in the
        highest tier with room, its room counted, for ``commit_block`` to journal (0: cached
        meanwhile; None: not cached)."""
        try:
            return self._write_block(key, data, fingerprint, below)
        finally:
            self.run_evictions()  # what making room queued, also where no tier took the block

    def _write_block(
        self, key: BlockKey, data: bytes, fingerprint: str | None, below: float | None
    ) -> Written | int | None:
        n = len(data)
        checksum = crc32(data)
        media = self.media_of(key[0])
        for i in tiers_for(self.ns, self.tiers, key, media):
            tier = self.tiers[i]
            with self.ns.lock:
                if self.info(key) is not None:
                    return 0  # someone cached it meanwhile
                node = self._current(key, fingerprint)
                if node is None:
                    return None  # the file changed or went: these bytes are stale already
                if not tier.spec.sync and not node.flags & PERSISTED:
                    continue  # volatile: only for persisted content (checked under the lock)
                free = below is None or self.used[tier.name] + n <= tier.quota * below
                if self.pending.busy(tier.name, key):
                    continue  # its old file there is still to be deleted
                if n > tier.quota or not free or not self.make_room(i, n):
                    continue
                self.used[tier.name] += n  # reserved while the file is written
            self.run_evictions()  # the victims' files moved or deleted, outside the lock
            try:
                st = tier.write(key, data, durable=not node.flags & PERSISTED)  # a copy
            except OSError as exc:  # a full disk, a deleted directory: try the next tier
                log.warning("cannot write block %s to tier %s: %s", key, tier.name, exc)
                with self.ns.lock:
                    self.used[tier.name] -= n
                continue
            return Written(key, tier, n, checksum, fingerprint, st)
        return None

    def commit_block(self, w: Written) -> int | None:
        """With the lock held: ``write_block``'s block journaled (BlockCached's seq), or, stale
        or cached by another reader meanwhile (0), its room given back and its file removed
        unless it *is* theirs (same tier, same path)."""
        key, tier = w.key, w.tier
        existing = self.info(key)
        if self._current(key, w.fingerprint) is None or existing is not None:
            self.used[tier.name] -= w.length
            if existing is None or existing.tier != tier.name:
                tier.remove(key)
            return None if existing is None else 0
        seq = self.ns.gate.commit(
            E.BlockCached(key[0], key[1], key[2], tier.name, w.length, w.checksum, time.time_ns())
        )
        self.apply_accesses()  # earlier hits come before this block in the order
        self.lru[tier.name][key] = w.length
        self.policy.touch(key)
        self._stamp(tier, key, w.status)
        return seq

    def _staged(self, key: BlockKey) -> bool:
        return self.staging.get(key[0]) == key[1]

    def _current(self, key: BlockKey, fingerprint: str | None) -> Inode | None:
        """With the lock held: ``key``'s file if bytes for it (from a UFS file of ``fingerprint``
        if known) are its current content; None if stale."""
        node = self.ns.tree.find(key[0])
        if node is None or node.version != key[1] or self._staged(key):
            return None
        known = node.ext.fingerprint if node.ext is not None else None
        return None if fingerprint is not None and known not in (None, fingerprint) else node

    def reserve(self, file: int, n: int, start: int = 0) -> int | None:
        """With the namespace lock held: the index of the highest tier from ``start`` on that
        ``file``'s media allow and that has (or can make) room for ``n`` bytes, which now count
        as used there; None if none can. The caller writes the block file, and gives the room
        back (``used[tier] -= n``) if it cannot."""
        media = self.media_of(file)
        # Staged content is in no UFS yet: only a durable tier may hold it.
        durable = durable_tiers(self.ns, self.tiers, file, media)
        for i in range(start, len(self.tiers)):
            tier = self.tiers[i]
            if i not in durable:
                continue
            if n <= tier.quota and self.make_room(i, n):
                self.used[tier.name] += n
                return i
        return None

    def adopt(self, key: BlockKey, tier: str, n: int) -> None:
        """With the namespace lock held: a block written beside the eviction order (a staged
        one, its room reserved) joins it, as the most recently used."""
        self.apply_accesses()
        self.lru[tier][key] = n
        self.policy.touch(key)

    def _stamp(self, tier: TierStore, key: BlockKey, st: os.stat_result | None = None) -> None:
        """Records the just-written (so checked) block file's stamp: reads skip the CRC."""
        if st is None:
            try:
                st = os.stat(tier.path_of(key))
            except OSError:
                return
        self._verified[key] = (st.st_size, st.st_mtime_ns, st.st_ino)

    def media_of(self, file: int) -> list[str] | None:
        """The tiers ``file`` is pinned to, or None: any tier."""
        return media_of(self.ns, file)

    def evictable(self, key: BlockKey) -> bool | None:
        """True/False for a block in the map; None for one that left it (stale: collect)."""
        if self.info(key) is None:
            return None
        node = self.ns.tree.find(key[0])
        if node is None and key[0] in self.ns.state.orphans:
            return False  # unlinked while open: these blocks are all its content
        if node is None or node.version != key[1]:
            return None
        return bool(node.flags & PERSISTED) and not node.flags & PINNED

    def make_room(self, i: int, n: int) -> bool:
        """With the namespace lock held: frees ``n`` bytes in tier ``i`` by demoting or
        dropping least recently used evictable blocks; False if it cannot."""
        tier = self.tiers[i]
        lru = self.lru[tier.name]
        if self.used[tier.name] + n <= tier.quota:
            return True
        for key in self._victims(tier.name):
            if self.used[tier.name] + n <= tier.quota:
                break
            evictable = self.evictable(key)
            length = lru[key]
            if evictable is None:  # its file changed or went: the bytes are garbage
                del lru[key]
                self.used[tier.name] -= length
                self.pending.unlink(tier, key, None)  # once durable, as collect_garbage's
                continue
            if not evictable:
                continue
            info = self.info(key)
            assert info is not None
            # Detached: out of the order and the accounting, so nobody picks it twice; readers
            # still read it where it is until its move is journaled.
            del lru[key]
            self.used[tier.name] -= length
            if not self._demote(key, info, i):
                self.drop(key, info, later=True)
            self.stats.evictions += 1
            evicted = self.stats.tier_evictions
            evicted[tier.name] = evicted.get(tier.name, 0) + 1
        return self.used[tier.name] + n <= tier.quota

    def _demote(self, key: BlockKey, info: BlockInfo, i: int) -> bool:
        """With the lock held: a detached block's move to the tier below queued, its room
        there counted; False if that tier cannot take it."""
        if i + 1 >= len(self.tiers):
            return False
        lower = self.tiers[i + 1]
        if self.pending.busy(lower.name, key):
            return False
        if info.length > lower.quota or not self.make_room(i + 1, info.length):
            return False
        self.queue_move(key, info, i, i + 1, give_back=False)
        return True

    def queue_move(
        self, key: BlockKey, info: BlockInfo, src: int, dst: int, give_back: bool
    ) -> None:
        """With the lock held, ``key`` detached from tier ``src`` and room made in ``dst``: its
        move queued for ``run_evictions``, the room counted."""
        self.used[self.tiers[dst].name] += info.length
        self.pending.move(Move(key, info, self.tiers[src], self.tiers[dst], give_back))

    def run_evictions(self) -> None:
        """Without the lock: the file work that making room queued (engine/cache/evicting.py).
        Whoever made room runs it once out of the lock, before using the room."""
        self.pending.run(self.finish_move)

    def finish_move(self, job: Move, copied: os.stat_result | None) -> None:
        """With the lock held: a queued move whose copy is ``copied`` (None: failed) journaled
        if the block is still the one chosen, or its reservation given back."""
        key, info, n = job.key, job.info, job.info.length
        self.pending.moving.discard(key)
        now = self.info(key)
        if copied is not None and now == info:
            seq = self.ns.gate.commit(E.BlockMoved(*key, job.dst.name, time.time_ns()))
            self.lru[job.dst.name][key] = n
            self._stamp(job.dst, key, copied)
            self.pending.unlink(job.src, key, seq)  # once the move is durable
            return
        self.used[job.dst.name] -= n
        if copied is not None and (now is None or now.tier != job.dst.name):
            self.pending.unlink(job.dst, key, -1)  # an orphan: no entry names it
        if now != info:  # dropped (the drop sees to its file), or garbage: collected here
            if now is None and self._current(key, None) is None:
                self.pending.unlink(job.src, key, None)
            return
        if job.give_back:
            self.lru[job.src.name][key] = n
            self.used[job.src.name] += n
        else:
            self.drop(key, info, later=True)

    def drop(self, key: BlockKey, info: BlockInfo, later: bool = False) -> None:
        """With the namespace lock held: journals the removal, then deletes the file once that
        is durable (and the Persisted that made it evictable: docs/operations.md): at once,
        waiting under the lock, or ``later``, by ``run_evictions`` outside it."""
        seq = self.ns.gate.commit(E.BlockRemoved(key[0], key[1], key[2], time.time_ns()))
        self._verified.pop(key, None)
        self.policy.forget(key)
        lru = self.lru.get(info.tier)
        if lru is not None and lru.pop(key, None) is not None:
            self.used[info.tier] -= info.length
        tier = self.by_name.get(info.tier)
        if tier is not None and later:
            self.pending.unlink(tier, key, seq)
        elif tier is not None:
            self.ns.gate.sync(seq)
            tier.remove(key)

    def verify(self, files: list[int]) -> int:
        """Checks every cached block of ``files`` against its CRC-32 now (not trusting earlier
        checks); drops the damaged ones; returns how many."""
        with self.ns.lock:
            keys = [(f, v, i) for f in files for (v, i) in self.ns.state.blocks.get(f, {})]
        bad = 0
        for key in keys:
            self._verified.pop(key, None)
            if self.read(key, 0, 0) is None and self.info(key) is None:
                bad += 1
        return bad

    def cached_bytes(self, file: int, version: int) -> int:
        return sum(
            info.length
            for (v, _i), info in self.ns.state.blocks.get(file, {}).items()
            if v == version
        )

    def free(self, file: int) -> int:
        """Drops the cached blocks of a persisted file; returns how many."""
        with self.ns.lock:
            node = self.ns.tree.find(file)
            if node is None or not node.flags & PERSISTED:
                return 0
            # Not the blocks a rewrite is staging: they are its, until it commits.
            blocks = {
                k: info
                for k, info in self.ns.state.blocks.get(file, {}).items()
                if k[0] == node.version
            }
            for (version, idx), info in blocks.items():
                self.drop((file, version, idx), info, later=True)
        self.run_evictions()
        return len(blocks)

    def reconcile(self, repair: bool = True) -> ReconcileReport:
        """See engine/cache/reconcile.py."""
        return reconcile(self, repair)

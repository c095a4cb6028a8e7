"""The engine facade: a Shoal home opened for use (lock, config, journal, state, operations)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Mapping
from typing import Any

from engine import openfiles
from engine.cache import checked, ordered
from engine.cache.blockcache import BlockCache
from engine.cache.durability import describe, pending_without_bytes
from engine.cache.release import release_volatile, remove_empty_tiers, remove_empty_tree
from engine.cache.tierclaim import TierOwner, claim_tier_dirs, read_mark, take_tier_dir
from engine.cache.tierpaths import placed
from engine.cache.tiers import TIER_MARK, TierSpec, TierStore
from engine.commit import CommitGate
from engine.config import Config, default_tiers, load_config
from engine.credentials import CredentialStore
from engine.errors import ShoalError
from engine.filesystem import FileSystem
from engine.home import (
    JOURNAL_DIR,
    HomeLock,
    StopRecord,
    begin_use,
    end_use,
    home_id,
    known_home_id,
    read_stop_record,
    resolve_home,
    tighten,
)
from engine.inode import ROOT_ID
from engine.mounts import MountTable
from engine.namespace import Namespace
from engine.persister import Persister
from engine.prefetch import DirectoryPrefetch
from engine.snapshot import fill_checkpoint, load_checkpoint
from engine.state import State
from engine.sync import MetadataSync
from engine.ttl import TtlChecker
from journal.journal import Journal, JournalOptions, StateCodec
from journal.layout import CheckpointFile
from journal.storage import OsStorage, Storage
from journal.writer import exit_process

log = logging.getLogger(__name__)

STATE_CODEC: StateCodec[State] = StateCodec(State, load_checkpoint, fill_checkpoint)


def _tier_specs(cfg: Config, home: str | None) -> list[TierSpec]:
    """The block cache's tiers: configured, else a home's defaults; none on storage with no
    directory (the crash simulator's) unless configured."""
    if cfg.cache_tiers is not None:
        return placed(cfg.cache_tiers, home)
    return [] if home is None else placed(default_tiers(home), home)


class Engine:
    def __init__(
        self,
        storage: Storage,
        options: JournalOptions,
        *,
        config: Config | None = None,
        lock: HomeLock | None = None,
        on_fatal: Callable[[BaseException], None] = exit_process,
        reconcile: bool = True,
        root_secrets: Mapping[str, str] | None = None,
    ) -> None:
        """``reconcile``: bring the block map and the tier directories in step at start (off
        for read-only inspection: fsck without --repair, replay). A start for use (reconcile
        on) also marks the home open until ``close``; after a stop that did not close it,
        directories loaded before are listed once more (engine/home.py, engine/sync.py), and
        what of the home and its tiers other users could read is made its owner's only.
        ``root_secrets``: for the mount at the root, in memory only (engine/credentials.py)."""
        self.config = config or Config(journal=options)
        self.storage = storage
        self._lock = lock
        self.journal: Journal[State] = Journal(
            storage, JOURNAL_DIR, STATE_CODEC, options, on_fatal=on_fatal
        )
        self.in_use = reconcile
        self.claimed = False  # tier directories made and marked: removed at close if empty
        self._owner: TierOwner | None = None  # the home claiming them, once it has
        home = getattr(storage, "root", None)
        cfg = self.config
        missing: list[str] = []
        try:
            self.tier_specs = _tier_specs(cfg, home)
            self._order_data()
            missing = [p for p in self.tier_dirs() if not os.path.lexists(p)]
            if reconcile:  # before anything is read or written
                self.make_private()
            self.state = self.journal.open()
            self.stops = self._stop_record(reconcile)
        except BaseException:
            self._unclaim(missing)
            self.journal.close()
            if lock is not None:
                lock.release()
            raise
        self.gate = CommitGate(self.state, self.journal)
        self.ns = Namespace(self.gate)
        given = {ROOT_ID: root_secrets} if root_secrets else None
        self.mounts = MountTable(self.ns, CredentialStore(home), given=given)
        self.mounts.sweep_remote = self.stops.unclean  # what writers killed mid-upload left
        self.sync = MetadataSync(self.ns, self.mounts, cfg.ufs_sync_interval, cfg.block_size)
        self.sync.relist_before = self.stops.relist_before
        has_cache = home is not None or cfg.cache_tiers is not None
        self.cache = self._open_cache(home, reconcile) if has_cache else None
        self.fs = FileSystem(
            self.ns, self.mounts, self.sync, self.cache, cfg.write_type, cfg.read_type
        )
        self.fs.readahead_blocks = cfg.cache_readahead_blocks
        self.fs.readahead_max_blocks = max(
            cfg.cache_readahead_max_blocks, cfg.cache_readahead_blocks
        )
        self.prefetch = self._prefetch(cfg)
        self.ttl = TtlChecker(self.ns, self.fs.changes, self.cache)
        self.persister: Persister | None = None
        if self.cache is not None:
            self.persister = self.fs.persister = Persister(
                self.ns, self.mounts, self.sync, self.cache
            )
            if reconcile:  # a normal start, not an inspection: pending uploads go on
                self._check_pending()
        if reconcile:  # writers killed mid-write: leftovers swept; files they kept open go
            self.mounts.clean_at_start()
            openfiles.release_at_start(self.ns, self.cache)
        report = self.journal.report
        if report is not None:
            log.info(
                "opened journal: checkpoint %s, %d entries replayed, last seq %d",
                report.checkpoint.path if report.checkpoint else "none",
                report.replayed,
                report.last_seq,
            )

    def _order_data(self) -> None:
        """Blocks written through the cache need no fsync of their own: the writer process
        syncs the disk tiers before the log, and start-up cuts the log before a block a power
        loss took (journal/datasync.py, engine/cache/ordered.py)."""
        stores = [TierStore(spec) for spec in self.tier_specs]
        journal = self.journal
        journal.data_dirs = [p for spec in self.tier_specs if spec.sync for p in spec.paths]
        journal.data_codes = ordered.DATA_CODES
        journal.check_data = lambda state, named: ordered.first_unsound(stores, state, named)

    def make_private(self) -> None:
        """What other users could read of the home and its tiers becomes its owner's only;
        said at warning level unless the home is being created (the directory the user has just
        made for it is no exposure). Before that, each tier directory outside the home is made if
        missing and refused if another user owns it, and each tier directory is claimed
        (engine/cache/tierclaim.py): one holding what Shoal did not write is refused with its
        files' modes as they were. A start for use does this, and fsck --repair."""
        home = getattr(self.storage, "root", None)
        if home is not None:
            created = not os.path.isdir(os.path.join(home, JOURNAL_DIR))
            private = self.private_paths()
            ident, made_now = home_id(self.storage)
            self._owner = TierOwner(ident, home, lost_id=made_now and not created)
            # the tiers outside the home: this user's before they are used
            claim_tier_dirs(self.tier_dirs(), self._owner, private[1:])
            self.claimed = True
            tighten(private, announce=not created)

    def _unclaim(self, made: list[str]) -> None:
        """A refused start leaves no tier directory it made (in /dev/shm too): those of
        ``made`` (missing before it) that are directories, not links, holding nothing but
        this home's mark. Another home may have taken one meanwhile: its mark stays."""
        for path in made:
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    continue
                mark = read_mark(path)
            except (OSError, ShoalError):
                continue
            ours = self._owner is not None and mark is not None and mark.id == self._owner.id
            if mark is None or ours:
                remove_empty_tree(path, TIER_MARK)

    def tier_dirs(self) -> list[str]:
        return [p for spec in self.tier_specs for p in spec.paths]

    def tier_owner(self) -> TierOwner | None:
        """The home as its tier directories' marks name it, without making its id (an id of
        "" before a start made one); None without a home."""
        home = getattr(self.storage, "root", None)
        return None if home is None else TierOwner(known_home_id(self.storage) or "", home)

    def private_paths(self) -> list[str]:
        """What only the home's owner may read: the home, and the cache's tier directories
        outside it (a MEM tier on /dev/shm)."""
        home = getattr(self.storage, "root", None)
        if home is None:
            return []
        inside = home.rstrip("/") + "/"
        return [home] + sorted({os.path.abspath(p) for p in self.tier_dirs()
                                if not os.path.abspath(p).startswith(inside)})  # fmt: skip

    def _stop_record(self, for_use: bool) -> StopRecord:
        """How the home was last stopped; opened ``for_use``, it is marked open from here on,
        before anything can change a store: a crash from now on is seen as unclean."""
        if not for_use:
            return read_stop_record(self.storage)
        record = begin_use(self.storage)
        if record.unclean:
            log.warning(
                "the home was not closed cleanly: directories loaded before are listed again"
                " at their first access"
            )
        return record

    def _check_pending(self) -> None:
        """Resumes the pending uploads, after checking that each still has its bytes (a disk
        or a tier directory may have lost them): those that do not are reported — they can
        never complete, and their files read EIO until rewritten or deleted."""
        assert self.persister is not None
        # First the store moves of renames a stop cut (engine/storemove.py): completed before
        # any upload or listing can meet their paths.
        self.fs.changes.moves.settle_quietly(force=True)
        with self.gate.lock:
            lost = pending_without_bytes(self.state)
            lines = [describe(self.state, item) for item in lost]
        for line in lines:
            log.error("pending persist without its bytes: %s", line)
        if lost:
            log.error("%d pending persist(s) lost their bytes; `shoal fsck` lists them", len(lost))
        pending = self.persister.resume()
        if pending:
            log.info("resuming %d pending persist(s)", pending)

    @classmethod
    def open_home(
        cls,
        home: str | None,
        overrides: dict[str, Any] | None = None,
        *,
        reconcile: bool = True,
        config_file: str | None = None,
        root_secrets: Mapping[str, str] | None = None,
    ) -> Engine:
        path = resolve_home(home)
        lock = HomeLock(path)
        lock.acquire()
        try:
            config = load_config(path, overrides, config_file)
        except ShoalError:
            lock.release()
            raise
        return cls(
            OsStorage(path),
            config.journal,
            config=config,
            lock=lock,
            reconcile=reconcile,
            root_secrets=root_secrets,
        )

    def _prefetch(self, cfg: Config) -> DirectoryPrefetch | None:
        """Directory prefetch, told of every miss; None without a cache or with 0 threads.
        (The read path's deadline is set here too: the constructor is at its length limit.)"""
        self.fs.reads.read_deadline_s = cfg.ufs_read_deadline_s
        if self.cache is None or cfg.cache_prefetch_threads <= 0:
            return None
        prefetch = DirectoryPrefetch(
            self.ns, self.mounts, self.fs.placement, self.sync, self.cache, cfg.block_size,
            cfg.cache_prefetch_threads, cfg.cache_prefetch_dir_limit, cfg.cache_prefetch_watermark,
        )  # fmt: skip
        self.fs.reads.on_miss = prefetch.on_miss
        return prefetch

    def checkpoint(self) -> CheckpointFile:
        ckpt = self.ns.gate.checkpoint()
        assert ckpt is not None
        return ckpt

    def _open_cache(self, home: str | None, reconcile: bool) -> BlockCache:
        cfg = self.config
        outside = set(self.private_paths()[1:])  # tier directories another user could make
        owner = self._owner
        tiers = [
            TierStore(spec, lambda root: take_tier_dir(root, owner, root in outside))
            for spec in self.tier_specs
        ]
        # Only a start for use takes over (and a clean stop leaves) the last run's checks.
        # (Not on simulated storage: it has no directory to keep them in.)
        checks = None
        if reconcile and home is not None and os.path.isdir(home):
            checks = os.path.join(home, checked.FILE)
        cache = BlockCache(self.ns, tiers, cfg.cache_evictor, cfg.cache_lrfu_half_life_s, checks)
        fixed = cache.reconcile(repair=reconcile)
        if reconcile and (fixed.orphans_removed or fixed.blocks_dropped):
            log.warning(
                "block cache reconciled: %d orphan files removed, %d blocks dropped",
                fixed.orphans_removed, fixed.blocks_dropped,
            )  # fmt: skip
        return cache

    def close(self, *, checkpoint: bool = True, release_memory: bool = False) -> None:
        """Clean shutdown: flush the log and (by default) write a final checkpoint.
        ``release_memory``: the process ends, so its volatile tiers are emptied into disk tiers
        and removed (engine/cache/release.py), unless the config keeps them."""
        try:
            self.ttl.stop()
            self.fs.spares.close()  # spools made ahead for files never created: removed
            if self.persister is not None:
                self.persister.close()  # uploads under way finish; queued ones stay pending
            if self.prefetch is not None:
                self.prefetch.close()  # before the cache: its fetches store into it
            if self.cache is not None:
                self.cache.close()  # blocks still being stored are finished first
                keep = self.config.cache_keep_volatile_tiers
                if release_memory and self.in_use and not keep:  # not after an inspection
                    release_volatile(self.cache)
                if self.in_use or self.claimed:
                    remove_empty_tiers(self.cache)
            self.mounts.close()
            with self.gate.lock:
                self.journal.close(self.state if checkpoint else None)
            if self.in_use:  # only once everything above finished: else the stop is unclean
                end_use(self.storage)
                self.in_use = False
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

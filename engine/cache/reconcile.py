"""Start-up (and fsck) reconciliation of the block cache: the journal's block map against the
files in the tier directories.

A crash can leave a block file the map does not list (written, not yet journaled), a temporary
file, a rewrite's staged blocks of a version its file never reached (engine/cache/staging.py),
or — if a disk lost data — a listed block whose file is missing or short. The map is the
truth: unlisted files go, staged blocks are dropped (journaled: that version is never reached
now), and listed blocks without a sound file are dropped too and will be fetched again on
demand.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Protocol

from engine.cache.tierclaim import claim_tier_dir
from engine.cache.tiers import BlockKey, TierStore
from engine.namespace import Namespace
from engine.state import BlockInfo

log = logging.getLogger(__name__)


class BlockMap(Protocol):
    """What reconciliation needs of the block cache (engine/cache/blockcache.py)."""

    ns: Namespace
    tiers: list[TierStore]

    def info(self, key: BlockKey) -> BlockInfo | None: ...

    def drop(self, key: BlockKey, info: BlockInfo) -> None:
        """With the namespace lock held: journals the block's removal, deletes its file."""


@dataclass
class ReconcileReport:
    orphans_removed: int = 0
    blocks_dropped: int = 0  # listed in the journal, missing or damaged on disk
    staged_dropped: int = 0  # staged by a rewrite that never committed (a crash cut it short)
    # Those blocks: without repair still in the map, so whoever judges what is lost (fsck's
    # data checks) must count them as gone.
    missing: list[BlockKey] = field(default_factory=list)


def reconcile(cache: BlockMap, repair: bool = True) -> ReconcileReport:
    """Makes the tier directories and the journal's block map agree: a block file the map
    does not list is an orphan and goes; a listed block whose file is missing or has the
    wrong size is dropped (journaled) and will be fetched again on demand; a block of a version
    above its file's (staged by a rewrite that a crash cut short: at a start no rewrite is under
    way) is dropped with its file. Without ``repair`` it only counts what it would do."""
    report = ReconcileReport()
    if repair:  # nothing is removed from a directory that is not Shoal's (tierclaim.py)
        for tier in cache.tiers:
            for root in tier.spec.paths:
                claim_tier_dir(root)
    with cache.ns.lock:
        present: set[tuple[str, BlockKey]] = set()
        for tier in cache.tiers:
            for key, path, size in tier.scan():
                info = cache.info(key) if key is not None else None
                if info is None or info.tier != tier.name or info.length != size:
                    if repair:
                        _remove_path(path)
                    report.orphans_removed += 1
                    continue
                present.add((tier.name, key))  # type: ignore[arg-type]
        for file, blocks in list(cache.ns.state.blocks.items()):
            node = cache.ns.tree.find(file)
            for (version, idx), info in list(blocks.items()):
                key = (file, version, idx)
                if node is not None and version > node.version:
                    if repair:
                        cache.drop(key, info)
                    report.staged_dropped += 1
                elif (info.tier, key) not in present:
                    if repair:
                        cache.drop(key, info)
                    report.blocks_dropped += 1
                    report.missing.append(key)
    if repair and report.staged_dropped:
        log.warning(
            "dropped %d staged block(s) of rewrites a crash cut short: those files keep the"
            " content they had before",
            report.staged_dropped,
        )
    return report


def _remove_path(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

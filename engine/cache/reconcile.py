"""Start-up (and fsck) reconciliation of the block cache: the journal's block map against the
files in the tier directories.

A crash can leave a block file the map does not list (written, not yet journaled), a temporary
file, or — if a disk lost data — a listed block whose file is missing or short. The map is the
truth: unlisted files go, listed blocks without a sound file are dropped (journaled) and will
be fetched again on demand.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Protocol

from engine.cache.tiers import BlockKey, TierStore
from engine.namespace import Namespace
from engine.state import BlockInfo


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
    # Those blocks: without repair still in the map, so whoever judges what is lost (fsck's
    # data checks) must count them as gone.
    missing: list[BlockKey] = field(default_factory=list)


def reconcile(cache: BlockMap, repair: bool = True) -> ReconcileReport:
    """Makes the tier directories and the journal's block map agree: a block file the map
    does not list is an orphan and goes; a listed block whose file is missing or has the
    wrong size is dropped (journaled) and will be fetched again on demand. Without
    ``repair`` it only counts what it would do."""
    report = ReconcileReport()
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
            for (version, idx), info in list(blocks.items()):
                key = (file, version, idx)
                if (info.tier, key) not in present:
                    if repair:
                        cache.drop(key, info)
                    report.blocks_dropped += 1
                    report.missing.append(key)
    return report


def _remove_path(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

"""A tier directory is Shoal's only once it is marked so.

Reconciliation removes whatever a tier directory holds that the block map does not list
(engine/cache/reconcile.py): right for what a crash left, ruinous for a directory that held
something else, say a tier configured as /data by mistake, or a MEM tier's /dev/shm name
pointing elsewhere. So before a start uses a tier directory, it must be empty (then it is
marked), marked already, or hold nothing but what Shoal writes there (a home from before
the mark: then it is marked too). Anything else is refused, naming what is there, and
nothing in it is touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from engine.cache.tiers import BLOCK_NAME, TEMP_PREFIX, TIER_MARK
from engine.errors import InvalidArgument
from journal.storage import PRIVATE_FILE_MODE, makedirs_private
from ufs.atomic import write_atomically

MARK_TEXT = b"A Shoal cache tier: Shoal removes from it anything its journal does not list.\n"
SHOWN = 5  # foreign names an error shows


def claim_tier_dirs(roots: Iterable[str]) -> None:
    """``claim_tier_dir`` for each of ``roots``: at a start for use and by fsck --repair, before
    anything in them is changed (tightened, reconciled)."""
    for root in roots:
        claim_tier_dir(root)


def claim_tier_dir(root: str) -> None:
    """Makes ``root`` if it is missing and marks it as a tier directory; raises InvalidArgument
    if it holds something Shoal did not write there."""
    makedirs_private(root)
    if os.path.exists(os.path.join(root, TIER_MARK)):
        return
    foreign = foreign_names(root)
    if foreign:
        raise InvalidArgument(
            f"{refusal(root, foreign)}: Shoal removes anything in a tier directory its journal"
            " does not list, so it will not use this one; give the tier an empty or new"
            " directory ([[cache.tiers]] in shoal.toml)"
        )
    write_atomically(
        os.path.join(root, TIER_MARK), [MARK_TEXT], temp_prefix=TEMP_PREFIX,
        mode=PRIVATE_FILE_MODE, sync=False,
    )  # fmt: skip


def refusal(root: str, foreign: list[str]) -> str:
    shown = ", ".join(foreign[:SHOWN]) + (", ..." if len(foreign) > SHOWN else "")
    return f"cache tier directory {root} holds what Shoal did not write there ({shown})"


def unclaimed(root: str) -> str | None:
    """What keeps an existing ``root`` from being a tier directory as it is (fsck's
    ``tier-marks``), or None: it is missing, empty or marked."""
    if not os.path.isdir(root) or os.path.exists(os.path.join(root, TIER_MARK)):
        return None
    foreign = foreign_names(root)
    if foreign:
        return f"{refusal(root, foreign)}: a start refuses it; give the tier another directory"
    if os.listdir(root):
        return (
            f"cache tier directory {root} is not marked as Shoal's ({TIER_MARK}), a home from"
            " before the mark: the next start marks it, as fsck --repair does"
        )
    return None


def foreign_names(root: str) -> list[str]:
    """What in an unmarked ``root`` is not a block file's folder (named by a file id), a block
    file in one, or a temporary file: names relative to ``root``, sorted."""
    foreign = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                continue
            if not entry.name.isdigit() or not entry.is_dir(follow_symlinks=False):
                foreign.append(entry.name)
                continue
            with os.scandir(entry.path) as inner:
                for block in inner:
                    ours = BLOCK_NAME.match(block.name) or block.name.startswith(TEMP_PREFIX)
                    if not ours or not block.is_file(follow_symlinks=False):
                        foreign.append(f"{entry.name}/{block.name}")
    return sorted(foreign)

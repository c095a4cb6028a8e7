"""A tier directory is Shoal's only once it is marked so.

Reconciliation removes whatever a tier directory holds that the block map does not list
(engine/cache/reconcile.py): right for what a crash left, ruinous for a directory that held
something else, say a tier configured as /data by mistake, or a MEM tier's /dev/shm name
pointing elsewhere. So before a start uses a tier directory, it must be empty (then it is
marked), marked already, or hold nothing but what Shoal writes there (a home from before
the mark: then it is marked too). Anything else is refused, naming what is there, and
nothing in it is touched.

The mark names the home that marked it (engine/home.py ``home_id``): two homes configured
onto one tier directory would each remove the other's blocks as orphans, and a block only
the cache holds (a file not yet uploaded) would be lost. A start refuses a directory another
home marked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from engine.cache.tiers import BLOCK_NAME, TEMP_PREFIX, TIER_MARK
from engine.errors import InvalidArgument
from journal.storage import PRIVATE_FILE_MODE, makedirs_private
from ufs.atomic import write_atomically

MARK_TEXT = b"A Shoal cache tier: Shoal removes from it anything its journal does not list.\n"
SHOWN = 5  # foreign names an error shows
OWNER = "home "  # the mark's line naming its home: "home <id> <path>"
MARK_LIMIT = 4096  # a mark is read up to this: it is a few lines


@dataclass(frozen=True)
class TierOwner:
    """The home a tier directory's mark names: its id, and its path when it marked it (for
    the message that refuses the directory to another home)."""

    id: str
    home: str

    def line(self) -> bytes:
        return f"{OWNER}{self.id} {self.home}\n".encode()


def claim_tier_dirs(roots: Iterable[str], owner: TierOwner) -> None:
    """``claim_tier_dir`` for each of ``roots``: at a start for use and by fsck --repair, before
    anything in them is changed (tightened, reconciled)."""
    for root in roots:
        claim_tier_dir(root, owner)


def claim_tier_dir(root: str, owner: TierOwner | None = None) -> None:
    """Makes ``root`` if it is missing and marks it as a tier directory (of ``owner``'s home);
    raises InvalidArgument if it holds something Shoal did not write there, or is another
    home's. Without ``owner`` (reconciliation's own guard: the start claimed with it before) any
    mark will do."""
    makedirs_private(root)
    mark = os.path.join(root, TIER_MARK)
    if os.path.exists(mark):
        if owner is None:
            return
        marked = mark_owner(root)
        if marked == owner.id:
            return
        if marked is not None:
            raise InvalidArgument(other_home(root))
        # marked before marks named their home: this home's from now on
    else:
        foreign = foreign_names(root)
        if foreign:
            raise InvalidArgument(
                f"{refusal(root, foreign)}: Shoal removes anything in a tier directory its"
                " journal does not list, so it will not use this one; give the tier an empty or"
                " new directory ([[cache.tiers]] in shoal.toml)"
            )
    text = MARK_TEXT + (owner.line() if owner is not None else b"")
    write_atomically(mark, [text], temp_prefix=TEMP_PREFIX, mode=PRIVATE_FILE_MODE, sync=False)
    if owner is not None and mark_owner(root) != owner.id:  # another home's start, just now
        raise InvalidArgument(other_home(root))


def mark_owner(root: str) -> str | None:
    """The id of the home ``root``'s mark names; None if it names none."""
    try:
        with open(os.path.join(root, TIER_MARK), "rb") as handle:
            text = handle.read(MARK_LIMIT).decode(errors="replace")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith(OWNER):
            return line[len(OWNER) :].split(" ", 1)[0] or None
    return None


def other_home(root: str) -> str:
    with open(os.path.join(root, TIER_MARK), "rb") as handle:
        text = handle.read(MARK_LIMIT).decode(errors="replace")
    named = next((ln[len(OWNER) :] for ln in text.splitlines() if ln.startswith(OWNER)), "")
    ident, _, home = named.partition(" ")
    return (
        f"cache tier directory {root} is another Shoal home's ({home or 'unknown path'}, id"
        f" {ident}): each home removes from its tier directories the blocks its own journal"
        " does not list, so two homes on one directory would remove each other's; give each"
        " home's tier its own directory ([[cache.tiers]] in shoal.toml)"
    )


def refusal(root: str, foreign: list[str]) -> str:
    shown = ", ".join(foreign[:SHOWN]) + (", ..." if len(foreign) > SHOWN else "")
    return f"cache tier directory {root} holds what Shoal did not write there ({shown})"


def unclaimed(root: str, home_id: str | None) -> str | None:
    """What keeps an existing ``root`` from being a tier directory of the home ``home_id``
    names (None: a home that has none yet) as it is (fsck's ``tier-marks``), or None: it is
    missing, empty, or marked by no other home."""
    if not os.path.isdir(root):
        return None
    if os.path.exists(os.path.join(root, TIER_MARK)):
        marked = mark_owner(root)
        return other_home(root) if marked is not None and marked != home_id else None
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

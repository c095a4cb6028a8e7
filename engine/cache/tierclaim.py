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
home marked. It also says whether Shoal made the directory: one an administrator made (its
owner, group and attributes chosen) is never removed by a stop, only emptied.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from engine.cache.tiers import BLOCK_NAME, TEMP_PREFIX, TIER_MARK
from engine.errors import InvalidArgument
from engine.home import claim_dirs
from journal.storage import PRIVATE_FILE_MODE, makedirs_private
from ufs.atomic import write_atomically

MARK_TEXT = b"A Shoal cache tier: Shoal removes from it anything its journal does not list.\n"
SHOWN = 5  # foreign names an error shows
OWNER = "home "  # the mark's line naming its home: "home <id> <path>"
FOUND = "found"  # the mark's line saying Shoal found the directory there: a stop leaves it
MARK_LIMIT = 4096  # a mark is read up to this: it is a few lines
FIX = "[[cache.tiers]] in shoal.toml"


@dataclass(frozen=True)
class TierOwner:
    """The home that claims tier directories: its id (engine/home.py ``home_id``; "" for a
    home that has none yet, as fsck may find one) and its path. ``lost_id``: the home existed
    (its journal did) but its id had to be made anew: a mark naming its path under another
    id is then its own. Otherwise such a mark is another home's at the same path (another
    container's, another host's on a shared directory) and is refused."""

    id: str
    home: str
    lost_id: bool = False


@dataclass(frozen=True)
class Mark:
    """What a tier directory's mark says: the id and path of the home that wrote it (None, "":
    a mark from before marks named their home), and whether Shoal made the directory (else
    it was there, empty, and a stop leaves it)."""

    id: str | None
    home: str
    made: bool


def claim_tier_dirs(roots: Iterable[str], owner: TierOwner, guarded: Collection[str]) -> None:
    """``take_tier_dir`` for each of ``roots``: at a start for use and by fsck --repair, before
    anything in them is changed (tightened, reconciled)."""
    for root in roots:
        take_tier_dir(root, owner, root in guarded)


def take_tier_dir(root: str, owner: TierOwner | None, guarded: bool) -> None:
    """Takes tier directory ``root`` before anything is written into it or removed from it:
    ``guarded`` (outside the home, where another user could make it first: /dev/shm), made if
    missing and refused unless this user's (engine/home.py ``claim_dirs``); then, for a home
    (``owner``), claimed as its own (``claim_tier_dir``). At a start, and again before the
    first block a run stores in a directory `shoal cache clear` removed."""
    made = guarded and bool(claim_dirs([root]))
    if owner is not None:
        claim_tier_dir(root, owner, made)


def claim_tier_dir(root: str, owner: TierOwner | None = None, made: bool = False) -> None:
    """Makes ``root`` if it is missing and marks it as a tier directory (of ``owner``'s home);
    raises InvalidArgument if it holds something Shoal did not write there, or is another
    home's. Without ``owner`` (reconciliation's own guard: the start claimed with it before) any
    mark will do. ``made``: the caller has just made it (a stop may remove it again)."""
    made = _make(root) or made
    mark = read_mark(root)
    if mark is not None:
        if owner is None or mark.id == owner.id:
            return
        if mark.id is not None and not (owner.lost_id and same_home(mark.home, owner.home)):
            raise InvalidArgument(other_home(root, mark))
        # A mark naming no home (from before marks did), or this home by its path under the
        # id it has just lost: this home's from now on.
        write_atomically(
            os.path.join(root, TIER_MARK), [_mark_text(owner, mark.made)],
            temp_prefix=TEMP_PREFIX, mode=PRIVATE_FILE_MODE, sync=False,
        )  # fmt: skip
        return
    foreign = foreign_names(root)
    if foreign:
        raise InvalidArgument(
            f"{refusal(root, foreign)}: Shoal removes anything in a tier directory its journal"
            f" does not list, so it will not use this one; give the tier an empty or new"
            f" directory ({FIX})"
        )
    # Shoal's if it made it now, or if it holds blocks from before the mark (Shoal made those;
    # a temporary file a kill left says nothing: an administrator's directory may hold one)
    ours = made or any(not n.startswith(TEMP_PREFIX) for n in os.listdir(root))
    if not _mark_new(root, owner, ours):
        claim_tier_dir(root, owner)  # another process marked it meanwhile: judged as found


def _make(root: str) -> bool:
    """Makes ``root`` (0700) if missing: whether it was; InvalidArgument if it is not a
    directory."""
    if os.path.isdir(root):
        return False
    try:
        makedirs_private(root)
    except (FileExistsError, NotADirectoryError):
        raise InvalidArgument(
            f"cache tier directory {root} is not a directory; give the tier a directory ({FIX})"
        ) from None
    return True


def _mark_text(owner: TierOwner | None, made: bool) -> bytes:
    text = MARK_TEXT
    if owner is not None:
        text += f"{OWNER}{owner.id} {owner.home}\n".encode()
    return text + (b"" if made else f"{FOUND}\n".encode())


def _mark_new(root: str, owner: TierOwner | None, made: bool) -> bool:
    """Writes ``root``'s mark where there is none; False if there is one already (another
    process's, written since it was looked for). Linked into place from a temporary file: a
    mark is never half written, and never replaces another home's."""
    temp = os.path.join(root, f"{TEMP_PREFIX}mark-{secrets.token_hex(6)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        os.write(fd, _mark_text(owner, made))
    finally:
        os.close(fd)
    try:
        os.link(temp, os.path.join(root, TIER_MARK))
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temp)


def read_mark(root: str) -> Mark | None:
    """``root``'s mark, None if it has none; InvalidArgument if it cannot be read as one."""
    path = os.path.join(root, TIER_MARK)
    try:
        with open(path, "rb") as handle:
            text = handle.read(MARK_LIMIT).decode(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory by that name, a file this user may not read
        raise InvalidArgument(
            f"cache tier directory {root}: its mark {path} cannot be read ({exc.strerror});"
            " remove it if Shoal did not write it"
        ) from None
    lines = text.splitlines()
    named = next((ln[len(OWNER) :] for ln in lines if ln.startswith(OWNER)), None)
    made = FOUND not in lines  # (marks from before the line were all taken as made)
    if named is None:
        return Mark(None, "", made)
    ident, _, home = named.partition(" ")
    return Mark(ident or None, home, made)


def same_home(a: str, b: str) -> bool:
    return bool(a) and os.path.realpath(a) == os.path.realpath(b)


def other_home(root: str, mark: Mark) -> str:
    return (
        f"cache tier directory {root} is another Shoal home's ({mark.home or 'unknown path'},"
        f" id {mark.id}): each home removes from its tier directories the blocks its own journal"
        f" does not list, so two homes on one directory would remove each other's; give each"
        f" home's tier its own directory ({FIX}), or, if that home is gone for good, remove"
        f" {os.path.join(root, TIER_MARK)} (its blocks go at the next start)"
    )


def refusal(root: str, foreign: list[str]) -> str:
    shown = ", ".join(foreign[:SHOWN]) + (", ..." if len(foreign) > SHOWN else "")
    return f"cache tier directory {root} holds what Shoal did not write there ({shown})"


def unclaimed(root: str, owner: TierOwner) -> str | None:
    """What keeps an existing ``root`` from being a tier directory of ``owner``'s home as it is
    (fsck's ``tier-marks``), or None: it is missing, empty, or marked by no other home."""
    if not os.path.lexists(root):
        return None
    if not os.path.isdir(root):
        return f"cache tier directory {root} is not a directory; a start refuses it"
    try:
        mark = read_mark(root)
    except InvalidArgument as exc:
        return str(exc)
    if mark is not None:
        if mark.id is None or mark.id == owner.id:
            return None
        if not owner.id and same_home(mark.home, owner.home):
            return None  # this home's, whose id file is gone: the next start takes it back
        return other_home(root, mark)
    foreign = foreign_names(root)
    if foreign:
        return f"{refusal(root, foreign)}: a start refuses it; give the tier another directory"
    if os.listdir(root):
        return (
            f"cache tier directory {root} is not marked as Shoal's ({TIER_MARK}), a home from"
            " before the mark: the next start marks it, as fsck --repair does"
        )
    return None


def shoal_made(root: str) -> bool:
    """Whether ``root``'s mark says Shoal made it (a stop may then remove it once it holds no
    block); False without a readable mark."""
    try:
        mark = read_mark(root)
    except InvalidArgument:
        return False
    return mark is not None and mark.made


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

"""fsck's checks of the home's own files and of the cache's tier directories, not of the
state: who may read them, and whether each tier directory is Shoal's to clean."""

from __future__ import annotations

from engine.cache.tierclaim import TierOwner, unclaimed
from engine.home import too_open
from engine.state import State


def check_home_modes(state: State, roots: list[str]) -> list[str]:
    """Nothing in the home, nor in the cache's tiers, is open to other users: the log and the
    checkpoints name every file, the tiers hold their data (engine/home.py). A start for use
    tightens what it finds; fsck --repair does too."""
    return [
        f"{path}: mode {st.st_mode & 0o7777:04o} (owner uid {st.st_uid}) lets other users in;"
        f" chmod go-rwx it, or run fsck --repair"
        for path, st in too_open(roots)
    ]


def check_tier_marks(state: State, tier_dirs: list[str], owner: TierOwner) -> list[str]:
    """Every tier directory holding anything is marked as Shoal's (engine/cache/tierclaim.py),
    by no other home: reconciliation removes what the journal does not list only from such a
    one, and a start refuses one holding what Shoal did not write or another home marked."""
    return [problem for root in tier_dirs if (problem := unclaimed(root, owner)) is not None]

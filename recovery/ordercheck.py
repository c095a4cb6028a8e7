"""fsck's ``ordered-data`` check: blocks only the cache holds, on disk as their entries say."""

from __future__ import annotations

from collections.abc import Collection

from engine.cache.ordered import only_copy
from engine.cache.tiers import BlockKey
from engine.state import State


def check_ordered_data(state: State, lost: Collection[BlockKey] = ()) -> list[str]:
    """No block of content only the cache holds is missing or other than its entry says.
    Such a block is written unsynced before its entry (journal/datasync.py); a power loss that
    kept the entry and not the bytes has the log cut before the entry at start
    (journal/datacut.py), so one found here was lost afterwards: by a disk, or by hand.
    ``lost``: the blocks missing, short, or failing their checksum (fsck reads them)."""
    out = []
    for file, version, idx in sorted(lost):
        if not only_copy(state, (file, version, idx)):
            continue
        node = state.tree.find(file)
        where = state.tree.path_of(node) if node is not None else "(gone)"
        out.append(
            f"{where} (inode {file}, version {version}): block {idx} is not on disk as its"
            " entry says (the cache holds the only copy)"
        )
    return out

"""Start-up's judge of the blocks the log names (journal/datacut.py): is each one's data there?

A block of a file written through the cache (MUST_CACHE, ASYNC_THROUGH) is written without a
sync of its own, before its BlockCached (journal/datasync.py). A power loss may keep that entry
and lose the bytes. Replay then finds a file whose content — the only copy — is not on disk:
dropping the block would lose acknowledged data while keeping later operations, which is no
prefix. The first such entry is where the log is cut instead. Blocks a loss costs nothing are
not judged: of persisted content (the UFS has it: dropped and fetched again, as ever), of
versions the file is no longer at (garbage) or has not reached (staged: dropped at start),
dropped or moved since (a later entry), and on volatile tiers (never the only copy).
"""

from __future__ import annotations

from typing import Any

from engine.cache.crc import crc32
from engine.cache.tiers import BlockKey, TierStore
from engine.inode import PERSISTED
from engine.state import State
from journal import entries as E

DATA_CODES = frozenset({E.TYPE_CODES[E.BlockCached]})


def block_sound(tier: TierStore, key: BlockKey, length: int, checksum: int) -> bool:
    """Whether the block's file holds exactly the bytes its entry names."""
    try:
        data = tier.read(key)
    except OSError:
        return False
    return len(data) == length and crc32(data) == checksum


def only_copy(state: State, key: BlockKey) -> bool:
    """Whether block ``key`` holds content the cache alone has (current, not persisted)."""
    node = state.tree.find(key[0])
    return node is not None and node.version == key[1] and not node.flags & PERSISTED


def first_unsound(tiers: list[TierStore], state: State, named: list[tuple[int, Any]]) -> int | None:
    """The seq of the first BlockCached in ``named`` whose block is still in the map as that
    entry cached it, holds the only copy of its content, and is not on disk as the entry says."""
    durable = {t.name: t for t in tiers if t.spec.sync}
    # A key cached, removed and cached again (a rewrite given up, then retried): only its last
    # entry wrote the file there now.
    last = {
        (e.file, e.version, e.idx): (seq, e) for seq, e in named if isinstance(e, E.BlockCached)
    }
    for seq, entry in sorted(last.values(), key=lambda item: item[0]):
        if entry.tier not in durable:
            continue
        key = (entry.file, entry.version, entry.idx)
        info = state.blocks.get(key[0], {}).get((key[1], key[2]))
        if info is None or info != (entry.tier, entry.length, entry.checksum):
            continue  # dropped or moved by a later entry (synced before its file went)
        if only_copy(state, key) and not block_sound(
            durable[entry.tier], key, entry.length, entry.checksum
        ):
            return seq
    return None


def unsound_only_copies(tiers: list[TierStore], state: State) -> list[BlockKey]:
    """Every block of content only the cache holds whose file is not what its entry says: what
    fsck's ``ordered-data`` check reports (start-up cut the log before any such block a power
    loss took, so one left is a disk's or a hand's doing). Reads every such block."""
    durable = {t.name: t for t in tiers if t.spec.sync}
    bad = []
    for file, blocks in state.blocks.items():
        for (version, idx), info in blocks.items():
            key = (file, version, idx)
            tier = durable.get(info.tier)
            if tier is None or not only_copy(state, key):
                continue
            if not block_sound(tier, key, info.length, info.checksum):
                bad.append(key)
    return bad

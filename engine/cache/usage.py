"""What the block cache rebuilds at start from the journal's block map rather than journal:
bytes used per tier, and each tier's blocks in an eviction order (the map's order)."""

from __future__ import annotations

from collections import OrderedDict

from engine.cache.tiers import BlockKey
from engine.namespace import Namespace


def tier_usage(
    ns: Namespace, tiers: list[str]
) -> tuple[dict[str, int], dict[str, OrderedDict[BlockKey, int]]]:
    """(tier -> bytes used, tier -> {key: length} from least to most recently used) of the
    blocks the map holds in ``tiers``, leaving out blocks staged above their file's version (a
    rewrite a crash cut short: reconcile drops them)."""
    used = {t: 0 for t in tiers}
    lru: dict[str, OrderedDict[BlockKey, int]] = {t: OrderedDict() for t in tiers}
    for file, blocks in ns.state.blocks.items():
        node = ns.tree.find(file)
        for (version, idx), info in blocks.items():
            if node is not None and version > node.version:
                continue
            if info.tier in used:
                used[info.tier] += info.length
                lru[info.tier][(file, version, idx)] = info.length
    return used, lru

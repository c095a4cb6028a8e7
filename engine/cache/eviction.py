"""Eviction policies of the block cache, as data: the order in which a tier's blocks are chosen
to make room, by name (the ``cache.evictor`` config key).

The cache keeps each tier's blocks from least to most recently used (its accounting needs that
order anyway) and tells the policy of every use; the policy turns a tier's blocks into the order
they are evicted in:

- LRU: least recently used first; the cache's own order, nothing more to keep.
- LRFU: lowest decayed score first; a block's score halves every half-life and gains 1 per use,
  so both recency and frequency count. Only this policy needs a use's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from engine.cache.tiers import BlockKey


class EvictionPolicy(Protocol):
    name: str
    timed: bool  # whether a use's time is needed (a hit then reads the clock)

    def touch(self, key: BlockKey, now: float | None = None) -> None:
        """``key`` was used (at ``now``, a time.monotonic() figure; None: now)."""

    def forget(self, key: BlockKey) -> None:
        """``key`` left the cache."""

    def order(self, keys: list[BlockKey]) -> list[BlockKey]:
        """A tier's blocks (least to most recently used) in the order they are evicted."""


class Lru:
    name = "LRU"
    timed = False

    def __init__(self, half_life_s: float = 0.0) -> None:
        pass  # recency alone: the order the cache keeps is the eviction order

    def touch(self, key: BlockKey, now: float | None = None) -> None:
        pass

    def forget(self, key: BlockKey) -> None:
        pass

    def order(self, keys: list[BlockKey]) -> list[BlockKey]:
        return keys


class Lrfu:
    name = "LRFU"
    timed = True

    def __init__(self, half_life_s: float = 300.0) -> None:
        self.half_life_s = half_life_s
        # block -> (score, time of its last update)
        self.scores: dict[BlockKey, tuple[float, float]] = {}

    def touch(self, key: BlockKey, now: float | None = None) -> None:
        if now is None:
            now = time.monotonic()
        score, then = self.scores.get(key, (0.0, now))
        self.scores[key] = (score * 0.5 ** ((now - then) / self.half_life_s) + 1.0, now)

    def forget(self, key: BlockKey) -> None:
        self.scores.pop(key, None)

    def order(self, keys: list[BlockKey]) -> list[BlockKey]:
        now = time.monotonic()

        def score(key: BlockKey) -> float:
            value, then = self.scores.get(key, (0.0, now))
            return value * 0.5 ** ((now - then) / self.half_life_s)

        return sorted(keys, key=score)


# The policies by config name, each made from the LRFU half-life (which only LRFU uses).
EVICTORS: dict[str, Callable[[float], EvictionPolicy]] = {p.name: p for p in (Lru, Lrfu)}


def eviction_policy(name: str, half_life_s: float) -> EvictionPolicy:
    make = EVICTORS.get(name)
    if make is None:
        raise ValueError(f"unknown evictor {name!r} (one of {', '.join(EVICTORS)})")
    return make(half_life_s)

"""Consistent hashing with virtual nodes: which worker owns a file, by its path.

Each worker stands at ``VNODES`` points of a 64-bit circle; a path belongs to the first point
at or after its own hash, and its next owners (where a client turns when the first fails) are
the following points' distinct workers. Adding or removing one of N workers moves only the
paths whose first point was that worker's: about 1/N of them (tests/cluster/test_ring.py).
Every client computes the same ring from the same member list: no coordination per file.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

VNODES = 160  # points per worker: 3 workers measured 29%, 34% and 36% of the circle
CIRCLE = 1 << 64  # the hashes are 64 bits


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HashRing:
    def __init__(self, workers: Iterable[str], vnodes: int = VNODES) -> None:
        self.workers = frozenset(workers)
        points = sorted(
            (_hash(f"{worker}#{i}".encode()), worker)
            for worker in self.workers
            for i in range(vnodes)
        )
        self._keys = [p[0] for p in points]
        self._owners = [p[1] for p in points]

    def owners(self, path: str, count: int = 3) -> list[str]:
        """Up to ``count`` distinct workers for ``path``, the owner first."""
        if not self._keys:
            return []
        want = min(count, len(self.workers))
        start = bisect.bisect_left(self._keys, _hash(path.encode("utf-8", "surrogateescape")))
        out: list[str] = []
        for i in range(len(self._keys)):
            worker = self._owners[(start + i) % len(self._keys)]
            if worker not in out:
                out.append(worker)
                if len(out) == want:
                    break
        return out

    def owner(self, path: str) -> str | None:
        found = self.owners(path, 1)
        return found[0] if found else None

    def shares(self) -> dict[str, float]:
        """Each worker's fraction of the circle: the arcs ending at its points (a path belongs
        to the first point at or after its hash), summing to 1 (`shoal report --cluster`)."""
        if not self._keys:
            return {}
        out = dict.fromkeys(self.workers, 0)
        previous = self._keys[-1] - CIRCLE  # the last point's arc wraps round to the first
        for key, worker in zip(self._keys, self._owners, strict=True):
            out[worker] += key - previous
            previous = key
        return {worker: arc / CIRCLE for worker, arc in out.items()}

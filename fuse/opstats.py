"""How many FUSE requests of each kind this daemon answered, how long they took, and the bytes
read and written through them: what `shoal stats` turns into rates (docs/mount.md).

Counted always, at the one place every request passes (fuse/boundary.py's ``answers_errno``),
as plain integers on a slotted object per kind: every handler runs on the trio loop's thread,
so no lock is needed, and a request pays a few attribute increments; one in 16 is timed
(docs/benchmarks.md, "The cost of counting"). Prometheus's counters (engine/metrics.py) cost
a lock and a label lookup each, so they are only kept when metrics are served.
"""

from __future__ import annotations

# Requests timed: those whose count ANDed with this is 1 (the 1st, 17th, 33rd... of a kind).
# Two clock reads cost ~0.2 us on this VM, as much as the rest of the wrapper: a sample gives
# the mean latency at a sixteenth of the price.
TIMED_MASK = 15


class OpCount:
    """One kind of request: requests answered, those answered with an error, bytes they
    carried (READ: returned, WRITE: accepted); how many were timed and the nanoseconds those
    took."""

    __slots__ = ("calls", "errors", "bytes", "timed", "ns")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.bytes = 0
        self.timed = 0
        self.ns = 0


# Per process: a daemon serves one mount.
COUNTS: dict[str, OpCount] = {}


def slot(kind: str) -> OpCount:
    """The counter of requests of ``kind`` (a handler's name: ``_getxattr`` counts as
    getxattr), made when the handler is defined, so the request path never looks it up."""
    return COUNTS.setdefault(kind.lstrip("_"), OpCount())


def snapshot() -> dict[str, dict[str, int]]:
    """Every kind's totals so far (kinds never asked for included, at 0)."""
    return {
        kind: {"calls": c.calls, "errors": c.errors, "bytes": c.bytes, "timed": c.timed, "ns": c.ns}
        for kind, c in sorted(COUNTS.items())
    }

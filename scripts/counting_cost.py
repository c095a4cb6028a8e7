"""What `shoal stats`'s counting costs a FUSE request: fuse/boundary.py's ``answers_errno``
(counting, one request in 16 timed) against the wrapper it had before counting (a bare
try/except, rebuilt here), the same handlers, both in this run; CPU time, best of 15 rounds.
Run: PYTHONPATH=. python scripts/counting_cost.py"""

from __future__ import annotations

import errno
import functools
import time
from typing import Any

import pyfuse3
import trio

from fuse import boundary

DATA = b"x" * 131072


def bare(handler: Any) -> Any:
    @functools.wraps(handler)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except Exception:  # never taken here: the shape of the old wrapper, not its mapping
            raise pyfuse3.FUSEError(errno.EIO) from None

    return guarded


def operations(wrap: Any) -> Any:
    class Ops:
        @wrap
        async def read(self, fh: int, off: int, size: int) -> bytes:
            return DATA

        @wrap
        async def getattr(self, ino: int, ctx: Any) -> int:
            return ino

    return Ops()


async def per_request(ops: Any, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await ops.read(1, 0, 4096)
        await ops.getattr(1, None)
    return (time.process_time() - start) / (2 * n)


async def main() -> None:
    before, counted = operations(bare), operations(boundary.answers_errno)
    best = [1.0, 1.0]
    for _ in range(15):
        best[0] = min(best[0], await per_request(before, 100_000))
        best[1] = min(best[1], await per_request(counted, 100_000))
    print(
        f"per request: bare wrapper {best[0] * 1e9:.0f} ns, counting {best[1] * 1e9:.0f} ns:"
        f" +{(best[1] - best[0]) * 1e9:.0f} ns ({best[1] / best[0]:.2f}x the wrapper)"
    )


if __name__ == "__main__":
    trio.run(main)

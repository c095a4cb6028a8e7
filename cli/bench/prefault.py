"""Memory touched once before a benchmark's contenders run, so none pays for it alone.

On a virtual machine whose memory the host backs only when the guest first touches it (as
the 2-core machine here), a page never used since boot costs far more to fault in than one
used and freed before: touching 6 GiB took 9.4 s the first time and 4.2 s in a new process
right after (docs/benchmarks.md). A benchmark's first contender that needs fresh memory pays
that, and the ones after run on the pages it freed: the S3 write through the mount, measured
first, spent 4 s more CPU in moto's server than the same upload right after it (moto's
completion copies the whole object twice into new memory), 0.42-0.50x boto3 instead of
0.82-0.89x. Touching the memory a run will need, before any contender, puts them on the same
footing; on a machine that has touched it already it costs a second per GiB or so.
"""

from __future__ import annotations

import subprocess
import sys

import psutil


def prefault(wanted: int, share: float = 0.5) -> int:
    """Touches ``wanted`` bytes (at most ``share`` of the available memory) in a child process,
    which frees them as it exits; the bytes touched."""
    size = min(wanted, int(psutil.virtual_memory().available * share))
    if size <= 0:
        return 0
    # bytearray(n) zero-fills: every page is written once.
    subprocess.run([sys.executable, "-c", f"bytearray({size})"], check=True)
    return size

"""`shoal bench read`'s directory-prefetch epoch: a fresh read-only mount of the same bucket,
with directory prefetch on (engine/prefetch.py), read once by the same readers as the cold
epoch, so the two compare as one run's figures (``mount_prefetch_small`` and
``prefetch_small_vs_boto3``; the cold epoch runs with ``prefetch=false``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

from engine.config import default_tiers

Timed = Callable[[list[str]], tuple[float, int]]


def prefetch_epoch(
    scratch: str,
    src: str,
    small: list[str],
    mount_args: Callable[[str, str], list[str]],
    shoal: Callable[..., None],
    timed: Timed,
    threads: int | None = None,
) -> tuple[float, int]:
    """Seconds and bytes of a first epoch over ``small`` through a new mount (its own home
    and mountpoint in ``scratch``) with prefetch on; ``threads`` overrides
    ``cache.prefetch_threads``. The mount and its MEM tier are gone afterwards."""
    home, mnt = os.path.join(scratch, "home-prefetch"), os.path.join(scratch, "mnt-prefetch")
    os.makedirs(mnt)
    args = mount_args(home, mnt)
    if threads is not None:
        args += ["-o", f"cache.prefetch_threads={threads}"]
    shoal(*args, "-o", "prefetch=true")
    try:
        return timed([os.path.join(mnt, os.path.relpath(p, src)) for p in small])
    finally:
        shoal("umount", mnt)
        for tier in default_tiers(home):  # its MEM tier lives on /dev/shm, outside scratch
            for path in tier.paths:
                shutil.rmtree(path, ignore_errors=True)


def prefetch_ratio(result: dict[str, Any]) -> dict[str, float]:
    """The prefetch epoch against direct GETs at the same parallelism (the readers'), and
    against the ceiling of any first epoch on this endpoint: direct GETs as many at once as
    prefetch runs (``boto3_wide_small``; ``boto3_wide_vs_boto3`` is that ceiling in the
    units of ``prefetch_small_vs_boto3``)."""
    mine, theirs = result["mount_prefetch_small"], result["boto3_small"]
    wide = result["boto3_wide_small"]
    return {
        "prefetch_small_vs_boto3": float(mine["mib_per_s"] / theirs["mib_per_s"]),
        "boto3_wide_vs_boto3": float(wide["mib_per_s"] / theirs["mib_per_s"]),
        "prefetch_small_vs_boto3_wide": float(mine["mib_per_s"] / wide["mib_per_s"]),
    }

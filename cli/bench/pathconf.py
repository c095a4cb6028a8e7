"""`shoal bench pathconf`: what per-path defaults cost a warm read, as a ratio in one run.

Small files (110 kB, a training sample's size) five directories deep in a local mount are read
whole through the engine API once cached: each read walks the path (the sync interval is asked
at every directory) and serves a hit. Short passes without any path conf alternate (ABBA) with
passes while ``confs`` prefixes are configured elsewhere plus one above the files (so every
lookup resolves through them: the per-directory cache answers). The figure is the ratio of the
fastest pass of each side (a shared machine's noise only ever adds), the medians' beside it.
The FUSE hit path asks no path conf at all (engine/readpath.py's ``read_cached``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from typing import Any

from engine.cache.tiers import TierSpec
from engine.config import Config
from engine.engine import Engine
from journal.journal import JournalOptions
from journal.storage import OsStorage

FILE_BYTES = 110_000
ROUNDS = 25  # pairs of short passes: the fastest of each side is the figure (noise only adds)
DEPTH = "a/b/c/d"


def _pass(engine: Engine, paths: list[str], repeats: int) -> float:
    """Seconds per read."""
    start = time.perf_counter()
    for _ in range(repeats):
        for path in paths:
            engine.fs.read(path, 0, FILE_BYTES)
    return (time.perf_counter() - start) / (repeats * len(paths))


def _configure(engine: Engine, confs: int, on: bool) -> None:
    pc = engine.fs.pathconf
    for i in range(confs):
        if on:
            pc.set(f"/elsewhere{i}", {"ttl": "86400000"})
        else:
            pc.unset(f"/elsewhere{i}")
    if on:
        pc.set("/a/b", {"read_type": "CACHE", "sync_interval": "-1"})
    else:
        pc.unset("/a/b")


def run(files: int = 64, confs: int = 64, repeats: int = 4) -> dict[str, Any]:
    scratch = tempfile.mkdtemp(prefix="shoal-bench-pathconf-")
    try:
        ufs = os.path.join(scratch, "ufs")
        os.makedirs(os.path.join(ufs, DEPTH))
        for i in range(files):
            with open(os.path.join(ufs, DEPTH, f"f{i}"), "wb") as f:
                f.write(os.urandom(FILE_BYTES))
        options = JournalOptions(checkpoint_every=0)
        tier = TierSpec("SSD", [os.path.join(scratch, "ssd")], 1 << 30, sync=False)
        config = Config(journal=options, block_size=1 << 20, cache_tiers=[tier])
        engine = Engine(OsStorage(os.path.join(scratch, "home")), options, config=config)
        try:
            engine.mounts.mount("/", ufs)
            paths = [f"/{DEPTH}/f{i}" for i in range(files)]
            _pass(engine, paths, 1)  # cold: fills the cache
            assert engine.cache is not None
            engine.cache.drain()
            without: list[float] = []
            with_: list[float] = []
            current = False
            for i in range(2 * ROUNDS):
                # ABBA order (off, on, on, off...): what a change of configuration leaves
                # behind (the journal writer's syncs) weighs on both sides alike.
                on = i % 4 in (1, 2)
                if on != current:
                    _configure(engine, confs, on)
                    current = on
                (with_ if on else without).append(_pass(engine, paths, repeats))
        finally:
            engine.close(checkpoint=False)
        base, conf = min(without), min(with_)
        return {
            "files": files,
            "path_confs": confs + 1,
            "read_us_without": base * 1e6,
            "read_us_with": conf * 1e6,
            "with_vs_without": conf / base,
            "median_ratio": statistics.median(with_) / statistics.median(without),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def format_table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"warm read of a {FILE_BYTES // 1000} kB file, 5 levels deep (engine API):",
            f"  no path conf                {r['read_us_without']:8.1f} us",
            f"  {r['path_confs']} path confs (one above) {r['read_us_with']:8.1f} us",
            f"  ratio                       {r['with_vs_without']:8.2f}x"
            f" (fastest passes; medians: {r['median_ratio']:.2f}x)",
        ]
    )

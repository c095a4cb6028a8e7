"""How long other requests wait for the namespace lock while eviction runs: a probe thread takes
the lock every half millisecond while reads fill a 16 MiB MEM tier with 4 MiB blocks, each
store demoting one block to a synced SSD tier (read, CRC, write, fsync, BlockMoved, unlink).
Prints the probe's waits. Run it against two trees to compare them, alternating:
PYTHONPATH=TREE python scripts/evict_lock_wait.py [FILES]"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from engine.engine import Engine
from tests.homes import write_config
from tests.ufs.stores import LocalStore

MiB = 1 << 20


def probe(engine: Engine, stop: threading.Event, waits: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        with engine.ns.lock:
            pass
        waits.append(time.perf_counter() - t0)
        time.sleep(0.0005)


def measure(top: Path, files: int) -> str:
    home = top / "home"
    home.mkdir()
    store = LocalStore(top / "ufs")
    names = [f"f{i:02d}" for i in range(files)]
    for name in names:
        store.put(name, os.urandom(4 * MiB))
    tiers: list[tuple[str, Path, int | str]] = [
        ("MEM", top / "mem", 16 * MiB),
        ("SSD", top / "ssd", 4 * MiB * (files + 1)),
    ]
    write_config(home, block_size=4 * MiB, tiers=tiers)
    engine = Engine.open_home(str(home))
    try:
        engine.mounts.mount("/", store.uri)
        cache = engine.cache
        assert cache is not None
        waits: list[float] = []
        stop = threading.Event()
        thread = threading.Thread(target=probe, args=(engine, stop, waits))
        thread.start()
        t0 = time.perf_counter()
        for name in names:
            engine.fs.read(f"/{name}", 0, engine.sync.lookup(f"/{name}").size)
            cache.drain()
        elapsed = time.perf_counter() - t0
        stop.set()
        thread.join()
        waits.sort()
        p99 = waits[len(waits) * 99 // 100]
        return (
            f"evictions={cache.stats.evictions} workload={elapsed:.2f}s probes={len(waits)}"
            f" lock wait max={waits[-1] * 1e3:.1f}ms p99={p99 * 1e3:.2f}ms"
            f" mean={statistics.mean(waits) * 1e3:.3f}ms"
        )
    finally:
        engine.close()


def main() -> None:
    top = Path(tempfile.mkdtemp(prefix="evict-lock-wait-"))
    try:
        print(measure(top, int(sys.argv[1]) if len(sys.argv) > 1 else 24))
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The reader workload every `shoal bench read` figure is measured with, whatever is read: N
reader processes started before the clock, the paths listed beforehand and dealt round-robin,
each file read whole in 1 MiB reads; and the ImageNet-like sample set it reads by default."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor

MiB = 1 << 20
SMALL_SIZE = 110_000


def read_file(path: str) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            n += len(chunk)
    return n


def read_files(paths: list[str]) -> int:
    return sum(read_file(p) for p in paths)


def timed(readers: int, paths: list[str]) -> tuple[float, int]:
    """Seconds and bytes for ``readers`` processes to read ``paths`` (dealt round-robin)."""
    shares = [paths[i::readers] for i in range(readers)]
    with ProcessPoolExecutor(readers) as pool:
        pool.submit(int).result()  # the workers are up before the clock starts
        start = time.perf_counter()
        total = sum(pool.map(read_files, shares))
        return time.perf_counter() - start, total


def figures(files: int, seconds: float, total: int) -> dict[str, float]:
    return {"files_per_s": files / seconds, "mib_per_s": total / seconds / MiB}


def make_dataset(root: str, classes: int, per_class: int, shards: int, shard_mib: int) -> None:
    for c in range(classes):
        folder = os.path.join(root, "train", f"n{c:08d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            with open(os.path.join(folder, f"img_{i:05d}.JPEG"), "wb") as f:
                f.write(os.urandom(SMALL_SIZE))
    os.makedirs(os.path.join(root, "shards"), exist_ok=True)
    for s in range(shards):
        with open(os.path.join(root, "shards", f"shard-{s:04d}.tar"), "wb") as f:
            for _ in range(shard_mib):
                f.write(os.urandom(MiB))


def listing(root: str) -> tuple[list[str], list[str]]:
    small = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "train")) for f in fs
    )
    large = sorted(
        os.path.join(root, "shards", f) for f in os.listdir(os.path.join(root, "shards"))
    )
    return small, large

"""`shoal bench read`: a training-style read workload through a real mount, in the spirit of
`juicefs bench`, with its baselines measured in the same run.

The dataset is ImageNet-like (class folders of ~110 KB files) plus a few large shards. It is
read by N parallel reader processes (4 by default):

- from a local directory (the same bytes, from the page cache: the ceiling of the machine);
- by direct boto3 GETs from an S3 endpoint (moto's server on 127.0.0.1 with ~20 ms added to
  every request by a proxy, as a remote store would cost; needs the test extras);
- through `shoal mount` of that endpoint, cold (every byte from S3, cached on the way), then
  warm (the second epoch: from Shoal's cache and the kernel's page cache).

The mount is read-only (a training mount), so FLUSH is off, as it would be in production.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cli.bench import ceiling, readfsspec, s3ceiling
from cli.bench.prefault import prefault
from cli.bench.readers import SMALL_SIZE
from cli.bench.readers import figures as _figures
from cli.bench.readers import listing as _listing
from cli.bench.readers import make_dataset as _make_dataset
from cli.bench.readers import read_files as _read_files
from cli.bench.readers import timed as _timed
from cli.bench.readprefetch import prefetch_epoch, prefetch_ratio
from engine.config import PREFETCH_THREADS, default_tiers


def _shoal(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"shoal {args[0]} failed: {done.stderr.strip()}")


def run(
    classes: int = 20,
    per_class: int = 150,
    shards: int = 4,
    shard_mib: int = 64,
    readers: int = 4,
    latency_ms: float = 20.0,
    workdir: str | None = None,
    prefetch_threads: int | None = None,
) -> dict[str, Any]:
    # Imported here: the S3 server needs moto, one of the test extras.
    from cli.bench.faultproxy import Fault, FaultProxy
    from cli.bench.s3server import require_moto, s3_client, start_s3_server

    require_moto()  # before minutes of work that would end at the S3 server
    scratch = tempfile.mkdtemp(prefix="shoal-bench-read-", dir=workdir)
    src, mnt, home = (os.path.join(scratch, d) for d in ("src", "mnt", "home"))
    os.makedirs(mnt)
    small, large, warmed = _dataset(src, classes, per_class, shards, shard_mib)
    result: dict[str, Any] = {
        "dataset": {
            "small_files": len(small), "small_bytes": SMALL_SIZE,
            "large_files": len(large), "large_mib": shard_mib,
        },
        "readers": readers, "latency_ms": latency_ms,
        "scratch": scratch,  # removed before this returns, with its homes' MEM tiers
        "prefaulted_bytes": warmed,
    }  # fmt: skip

    def measure(label: str, paths: list[str], read: ceiling.Reader) -> None:
        seconds, total = read(paths)
        result[label] = _figures(len(paths), seconds, total)

    # The machine's ceiling: the same files from a local directory (page cache).
    _read_files(small + large)
    measure("local_small", small, lambda p: _timed(readers, p))
    measure("local_large", large, lambda p: _timed(readers, p))
    # The hit path against the bare pyfuse3 file system, both over local bytes.
    result.update(ceiling.run(src, small, scratch, lambda p: _timed(readers, p)))

    server = start_s3_server()
    proxy = FaultProxy(server.endpoint).start()
    try:
        _upload(s3_client(server.endpoint), src, small + large)
        proxy.add(Fault("delay", -1, seconds=latency_ms / 1000))
        get_all = _s3_reader(s3_client(proxy.endpoint), src, readers)
        measure("boto3_small", small, get_all)
        measure("boto3_large", large, get_all)
        # What any first epoch can reach here: the same GETs as wide as directory prefetch.
        wide = prefetch_threads or PREFETCH_THREADS
        measure("boto3_wide_small", small, _s3_reader(s3_client(proxy.endpoint, wide), src, wide))

        # The least any pyfuse3 mount does for a cold file here, just before Shoal's cold epoch.
        result.update(s3ceiling.epoch(scratch, src, small, proxy.endpoint, readers))
        # Cold means every file asked for by a reader: directory prefetch off (its own epoch,
        # below); the next directory is still listed ahead (metadata only), as on any ro mount.
        _shoal(*_mount_args(home, mnt, proxy.endpoint), "-o", "prefetch=false")
        try:
            in_mount = [os.path.join(mnt, os.path.relpath(p, src)) for p in small]
            in_mount_large = [os.path.join(mnt, os.path.relpath(p, src)) for p in large]
            for phase in ("cold", "warm"):
                measure(f"mount_{phase}_small", in_mount, lambda p: _timed(readers, p))
                measure(f"mount_{phase}_large", in_mount_large, lambda p: _timed(readers, p))
            result.update(readfsspec.measure(mnt, in_mount, small, readers))  # fsspec client
        finally:
            _shoal("umount", mnt)
        measure(
            "mount_prefetch_small", small,
            lambda p: prefetch_epoch(
                scratch, src, p, lambda h, m: _mount_args(h, m, proxy.endpoint), _shoal,
                lambda q: _timed(readers, q), prefetch_threads,
            ),
        )  # fmt: skip
    finally:
        proxy.stop()
        server.stop()
        _remove_scratch(scratch, home)

    result["ratios"] = _ratios(result) | prefetch_ratio(result) | ceiling.ratios(result)
    return result


def _dataset(
    src: str, classes: int, per_class: int, shards: int, shard_mib: int
) -> tuple[list[str], list[str], int]:
    """The dataset made in ``src`` and listed (small files, large ones), and the bytes of memory
    touched for the run: fresh memory costs whoever touches it first (cli/bench/prefault.py),
    so what the run needs (a copy of the dataset in the S3 server, in the MEM tier, in the
    readers' page cache) is touched before any contender."""
    _make_dataset(src, classes, per_class, shards, shard_mib)
    small, large = _listing(src)
    data_bytes = len(small) * SMALL_SIZE + len(large) * (shard_mib << 20)
    return small, large, prefault(4 * data_bytes)


def _upload(client: Any, src: str, paths: list[str]) -> None:
    """The dataset into bucket "bench" under ds/."""
    client.create_bucket(Bucket="bench")

    def upload(path: str) -> None:
        with open(path, "rb") as f:
            client.put_object(Bucket="bench", Key="ds/" + os.path.relpath(path, src), Body=f)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, paths))


def _s3_reader(client: Any, src: str, readers: int) -> Callable[[list[str]], tuple[float, int]]:
    """Reads the given dataset files by direct GETs, ``readers`` at once: (seconds, bytes)."""

    def get_all(paths: list[str]) -> tuple[float, int]:
        keys = ["ds/" + os.path.relpath(p, src) for p in paths]

        def get(key: str) -> int:
            return len(client.get_object(Bucket="bench", Key=key)["Body"].read())

        with ThreadPoolExecutor(readers) as pool:
            start = time.perf_counter()
            total = sum(pool.map(get, keys))
            return time.perf_counter() - start, total

    return get_all


def _mount_args(home: str, mnt: str, endpoint: str) -> list[str]:
    """`shoal mount` of the bucket at ``mnt``, read-only, through ``endpoint``."""
    from cli.bench.s3server import ACCESS_KEY, SECRET_KEY

    options = {
        "endpoint": endpoint, "path_style": "true", "region": "us-east-1",
        "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
    }  # fmt: skip
    mount_args = ["mount", "--home", home, "s3://bench/ds", mnt, "-o", "ro"]
    for key, value in options.items():
        mount_args += ["-o", f"{key}={value}"]
    return mount_args


def _remove_scratch(scratch: str, home: str) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
    # The home's default MEM tier lives on /dev/shm, outside the scratch directory: left
    # there, every run would keep up to a GiB of RAM.
    for tier in default_tiers(home):
        for path in tier.paths:
            shutil.rmtree(path, ignore_errors=True)


def _ratios(result: dict[str, Any]) -> dict[str, float]:
    def ratio(mine: str, theirs: str, unit: str) -> float:
        return float(result[mine][unit] / result[theirs][unit])

    return {
        "cold_small_vs_boto3": ratio("mount_cold_small", "boto3_small", "mib_per_s"),
        "cold_large_vs_boto3": ratio("mount_cold_large", "boto3_large", "mib_per_s"),
        "warm_small_vs_local": ratio("mount_warm_small", "local_small", "files_per_s"),
        "warm_large_vs_local": ratio("mount_warm_large", "local_large", "mib_per_s"),
        **readfsspec.ratios(result),
        **s3ceiling.ratios(result),
    }


ROWS = [
    ("local directory (page cache)", "local"),
    ("direct boto3 GETs", "boto3"),
    ("shoal mount, cold", "mount_cold"),
    ("shoal mount, warm", "mount_warm"),
]
PREFETCH_ROW = ("shoal mount, dir. prefetch", "mount_prefetch")  # small files only
WIDE_ROW = ("direct boto3 GETs, as wide", "boto3_wide")  # as many at once as prefetch
S3_CEILING_ROW = ("bare pyfuse3 over S3, cold", "ceiling_cold_s3")  # cli/bench/s3ceiling.py
S3_LISTED_ROW = ("bare pyfuse3 over S3, listed", "ceiling_cold_s3_listed")  # names known


def format_table(result: dict[str, Any]) -> str:
    d = result["dataset"]
    lines = [
        f"{d['small_files']} files of {d['small_bytes'] // 1000} KB and {d['large_files']} shards"
        f" of {d['large_mib']} MiB; {result['readers']} readers;"
        f" {result['latency_ms']:.0f} ms added to each S3 request",
        "",
        f"{'':<30} {'small files/s':>14} {'small MiB/s':>12} {'large MiB/s':>12}",
    ]
    for label, key in ROWS:
        s, big = result[f"{key}_small"], result[f"{key}_large"]
        lines.append(
            f"{label:<30} {s['files_per_s']:>14,.0f} {s['mib_per_s']:>12,.1f}"
            f" {big['mib_per_s']:>12,.1f}"
        )
    for label, key in (PREFETCH_ROW, WIDE_ROW, S3_CEILING_ROW, S3_LISTED_ROW):
        if f"{key}_small" in result:
            s = result[f"{key}_small"]
            lines.append(f"{label:<30} {s['files_per_s']:>14,.0f} {s['mib_per_s']:>12,.1f}")
    lines += ["", f"{'':<30} {'small files/s':>14} {'CPU µs/file':>12}"]
    lines += [*ceiling.table_lines(result), ""]
    for name, value in result["ratios"].items():
        lines.append(f"{name:<24} {value:6.2f}x")
    return "\n".join(lines)


def chart(result: dict[str, Any], path: str) -> None:
    """A PNG of the table: small files/s and large MiB/s per way of reading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for label, _ in ROWS]
    small = [result[f"{key}_small"]["files_per_s"] for _, key in ROWS]
    large = [result[f"{key}_large"]["mib_per_s"] for _, key in ROWS]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    for axis, values, color, unit in (
        (a, small, "#4477aa", "small files / s (log scale)"),
        (b, large, "#ee6677", "large files, MiB / s (log scale)"),
    ):
        bars = axis.barh(labels, values, color=color)
        axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
        axis.set_xscale("log")  # cold and warm differ by orders of magnitude
        axis.set_xlim(1, max(values) * 8)
        axis.set_xlabel(unit)
        axis.invert_yaxis()
    b.set_yticklabels([])
    fig.suptitle(
        f"shoal bench read: {result['readers']} readers,"
        f" {result['latency_ms']:.0f} ms added to each S3 request"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result)

"""`shoal bench cache`: read throughput through the block cache, as ratios to a baseline
measured in the same run on the same bytes.

- hits: a file read through the engine API (no FUSE) once its blocks are cached, against the
  same file read directly from a local directory (both from the page cache: the bytes were just
  read), 1 and 8 parallel readers; each the median of HIT_ROUNDS alternating passes;
- cold: files on S3 read through the engine for the first time (every block a miss, fetched by
  a ranged GET and cached), against direct ranged GETs of the same sizes with boto3, 1 and 8
  parallel readers. The S3 endpoint is moto's server on 127.0.0.1 (started here; needs the test
  extras), so the figures compare overheads, not a real network.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.cache.tiers import TierSpec
from engine.config import Config
from engine.engine import Engine
from journal.journal import JournalOptions
from journal.storage import OsStorage

MiB = 1 << 20
CHUNK = 4 * MiB
HIT_ROUNDS = 5
HIT_REPEATS = 8


def _engine(home: str, tiers: list[TierSpec], block_size: int) -> Engine:
    options = JournalOptions(checkpoint_every=0)
    config = Config(journal=options, block_size=block_size, cache_tiers=tiers)
    return Engine(OsStorage(home), options, config=config)


def _parallel(readers: int, jobs: list[Any], work: Any) -> float:
    """Bytes per second of running ``work`` over ``jobs`` on ``readers`` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(readers) as pool:
        total = sum(pool.map(work, jobs))
    return total / (time.perf_counter() - start)


def _chunks(size: int) -> list[tuple[int, int]]:
    return [(off, min(CHUNK, size - off)) for off in range(0, size, CHUNK)]


def bench_hits(scratch: str, file_mib: int) -> dict[str, float]:
    ufs = os.path.join(scratch, "ufs")
    os.makedirs(ufs)
    size = file_mib * MiB
    names = [f"part{i}" for i in range(8)]
    for name in names:
        with open(os.path.join(ufs, name), "wb") as f:
            f.write(os.urandom(size))
    tier = TierSpec("SSD", [os.path.join(scratch, "ssd")], 64 * size, sync=False)
    engine = _engine(os.path.join(scratch, "home-hits"), [tier], CHUNK)
    out: dict[str, float] = {}
    try:
        engine.mounts.mount("/", ufs)
        # Each pass reads the files several times: a single pass over them takes a few tens
        # of milliseconds, too short to measure on a shared machine.
        jobs = [(name, off, n) for name in names for off, n in _chunks(size)] * HIT_REPEATS

        def direct(job: tuple[str, int, int]) -> int:
            name, off, n = job
            fd = os.open(os.path.join(ufs, name), os.O_RDONLY)
            try:
                return len(os.pread(fd, n, off))
            finally:
                os.close(fd)

        def cached(job: tuple[str, int, int]) -> int:
            name, off, n = job
            return len(engine.fs.read(f"/{name}", off, n))

        _parallel(8, jobs, cached)  # cold: fills the cache
        assert engine.cache is not None
        engine.cache.drain()  # every block stored: no tier write left to compete with the hits
        _parallel(8, jobs, direct)  # warms the page cache for the baseline
        for readers in (1, 8):
            # A pass takes well under a second: the median of several, alternating the two,
            # so a moment of noise on this shared machine cannot decide the ratio.
            rounds = [
                (_parallel(readers, jobs, direct), _parallel(readers, jobs, cached))
                for _ in range(HIT_ROUNDS)
            ]
            out[f"direct_local_{readers}_bps"] = statistics.median(r[0] for r in rounds)
            out[f"cache_hits_{readers}_bps"] = statistics.median(r[1] for r in rounds)
            out[f"hits_vs_local_{readers}"] = (
                out[f"cache_hits_{readers}_bps"] / out[f"direct_local_{readers}_bps"]
            )
    finally:
        engine.close(checkpoint=False)
    return out


def bench_cold(scratch: str, file_mib: int) -> dict[str, float]:
    from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, has_moto, s3_client, start_s3_server

    if not has_moto():  # the test extras are not installed: the hit figures only
        return {}
    server = start_s3_server()
    out: dict[str, float] = {}
    try:
        client = s3_client(server.endpoint)
        client.create_bucket(Bucket="bench")
        size = file_mib * MiB
        options = {
            "endpoint": server.endpoint, "path_style": "true", "region": "us-east-1",
            "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
        }  # fmt: skip
        for readers in (1, 8):
            prefix = f"r{readers}"
            names = [f"{prefix}/shard{i}" for i in range(8)]
            for name in names:
                client.put_object(Bucket="bench", Key=name, Body=os.urandom(size))
            jobs = [(name, off, n) for name in names for off, n in _chunks(size)]

            def direct(job: tuple[str, int, int]) -> int:
                name, off, n = job
                body = client.get_object(
                    Bucket="bench", Key=name, Range=f"bytes={off}-{off + n - 1}"
                )["Body"]
                return len(body.read())

            tier = TierSpec("SSD", [os.path.join(scratch, f"ssd-{readers}")], 64 * size, False)
            engine = _engine(os.path.join(scratch, f"home-cold-{readers}"), [tier], CHUNK)
            try:
                engine.mounts.mount("/", f"s3://bench/{prefix}", options)
                engine.sync.listdir("/")

                def cold(job: tuple[str, int, int], engine: Engine = engine) -> int:
                    name, off, n = job
                    return len(engine.fs.read("/" + name.split("/", 1)[1], off, n))

                out[f"direct_gets_{readers}_bps"] = _parallel(readers, jobs, direct)
                out[f"cold_{readers}_bps"] = _parallel(readers, jobs, cold)
                out[f"cold_vs_gets_{readers}"] = (
                    out[f"cold_{readers}_bps"] / out[f"direct_gets_{readers}_bps"]
                )
            finally:
                engine.close(checkpoint=False)
    finally:
        server.stop()
    return out


def block_size_sweep(
    sizes_mib: list[int], file_mib: int = 64, latency_s: float = 0.02, workdir: str | None = None
) -> dict[str, float]:
    """Cold read throughput of one file (1 reader, sequential 1 MiB requests) per block size,
    without readahead and with 2 blocks of it, with ``latency_s`` added to every request by a
    proxy in front of the S3 endpoint: larger blocks pay the round trip less often, smaller
    ones fetch less that a reader never wants."""
    from cli.bench.faultproxy import Fault, FaultProxy
    from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, require_moto, s3_client, start_s3_server

    require_moto()  # before the scratch directory is made
    scratch = tempfile.mkdtemp(prefix="shoal-bench-bs-", dir=workdir)
    server = start_s3_server()
    proxy = FaultProxy(server.endpoint).start()
    out: dict[str, float] = {}
    try:
        s3_client(server.endpoint).create_bucket(Bucket="sweep")
        s3_client(server.endpoint).put_object(
            Bucket="sweep", Key="f", Body=os.urandom(file_mib * MiB)
        )
        proxy.add(Fault("delay", -1, seconds=latency_s))
        options = {
            "endpoint": proxy.endpoint, "path_style": "true", "region": "us-east-1",
            "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
        }  # fmt: skip
        for mib in sizes_mib:
            for ahead in (0, 2):
                name = f"{mib}-{ahead}"
                tier = TierSpec("SSD", [os.path.join(scratch, f"ssd-{name}")], 4 * file_mib * MiB)
                engine = _engine(os.path.join(scratch, f"home-{name}"), [tier], mib * MiB)
                try:
                    engine.fs.readahead_blocks = ahead
                    engine.mounts.mount("/", "s3://sweep", options)
                    engine.sync.listdir("/")
                    start = time.perf_counter()
                    for offset in range(0, file_mib * MiB, MiB):
                        engine.fs.read("/f", offset, MiB)
                    elapsed = time.perf_counter() - start
                    out[f"cold_bs_{mib}mib_readahead_{ahead}_bps"] = file_mib * MiB / elapsed
                finally:
                    engine.close(checkpoint=False)
    finally:
        proxy.stop()
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def run(file_mib: int = 32, workdir: str | None = None) -> dict[str, Any]:
    scratch = tempfile.mkdtemp(prefix="shoal-bench-cache-", dir=workdir)
    try:
        result: dict[str, Any] = {"file_mib": file_mib, "files": 8}
        result.update(bench_hits(scratch, file_mib))
        result.update(bench_cold(scratch, file_mib))
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def format_table(r: dict[str, Any]) -> str:
    rows = []
    for readers in (1, 8):
        if f"cache_hits_{readers}_bps" in r:
            local = _rate(r, f"direct_local_{readers}_bps")
            rows.append((f"direct local reads, {readers} readers", local))
            rows.append((f"cache hits, {readers} readers", _rate(r, f"cache_hits_{readers}_bps")))
            rows.append(("  ratio to direct local reads", f"{r[f'hits_vs_local_{readers}']:.2f}x"))
    for readers in (1, 8):
        if f"cold_{readers}_bps" in r:
            gets = _rate(r, f"direct_gets_{readers}_bps")
            rows.append((f"direct ranged GETs, {readers} readers", gets))
            rows.append(
                (f"cold reads (misses), {readers} readers", _rate(r, f"cold_{readers}_bps"))
            )
            rows.append(("  ratio to direct GETs", f"{r[f'cold_vs_gets_{readers}']:.2f}x"))
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def _rate(r: dict[str, Any], key: str) -> str:
    return f"{r[key] / MiB:,.0f} MiB/s"


if __name__ == "__main__":
    out = run(int(sys.argv[1]) if len(sys.argv) > 1 else 32)
    print(format_table(out))
    print(json.dumps(out))

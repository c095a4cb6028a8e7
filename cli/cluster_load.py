"""`shoal fs load --cluster`: the files below PATH loaded into the cluster's cache, each by its
owner (engine/cluster/loader.py), the workers in parallel, with the progress bar of `shoal fs
load`. The home names the files (its namespace, as a client mount sees it); the workers fetch
them from the store, each object once."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from cli import cluster_opts
from cli.common import EXIT_FAILED, EXIT_OK
from cli.progress import bar as progress_bar
from engine.cluster.loader import ClusterLoader
from engine.cluster.membership import Worker
from engine.engine import Engine
from engine.errors import InvalidArgument, ShoalError
from engine.inode import Inode


def _plan(engine: Engine, loader: ClusterLoader,
          files: list[tuple[str, Inode]]) -> dict[str, list[tuple[Worker, str, int]]]:  # fmt: skip
    """Per worker: (worker, the file's path in the store, its size)."""
    plan: dict[str, list[tuple[Worker, str, int]]] = {}
    for path, node in files:
        where = engine.sync.mount_of(node)
        if where is None:
            raise InvalidArgument(f"{path} is not below a mount of a store")
        mount, rel = where
        worker = loader.owner(mount.uri, rel)
        plan.setdefault(worker.id, []).append((worker, rel, node.size))
    return plan


def load(args: argparse.Namespace, engine: Engine, files: list[tuple[str, Inode]]) -> int:
    loader = ClusterLoader(args.cluster, cluster_opts.token(args))
    plan = _plan(engine, loader, files)
    total = sum(size for items in plan.values() for _w, _r, size in items)
    bar = progress_bar(total, f"loading {len(files)} files on {len(plan)} workers", unit="B",
                       unit_scale=True, unit_divisor=1024)  # fmt: skip
    failures: list[str] = []
    pools = [ThreadPoolExecutor(args.parallel) for _ in plan]  # each worker its own N at once
    try:
        futures: dict[Future[int], str] = {}
        for pool, items in zip(pools, plan.values(), strict=True):
            for worker, rel, _size in items:
                futures[pool.submit(loader.load, worker, rel)] = f"{rel} (on {worker.id})"
        for future in as_completed(futures):
            try:
                bar.update(future.result())
            except ShoalError as exc:
                failures.append(f"{futures[future]}: {exc}")
    finally:
        for pool in pools:
            pool.shutdown()
        bar.close()
    print(
        f"{len(files) - len(failures)} file(s) loaded ({total:,} bytes) on {len(plan)} worker(s),"
        f" {len(failures)} failed"
    )
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK

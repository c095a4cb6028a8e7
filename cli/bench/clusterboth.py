"""`shoal bench cluster --combined`: the same epochs through 3 nodes that are each both worker and
client (`shoal mount --cluster --serve`, one daemon and one home each) and through 3 `shoal
worker`s with 3 separate `shoal mount --cluster` clients, in the same run, over the same store
behind the same counting proxy (cli/bench/cluster.py's). Each mount reads every file once per
epoch; a cold epoch from empty caches, then a warm one after every mount is made again (a
combined node's worker role restarts with it, its home's tier kept)."""

from __future__ import annotations

import os
import shutil
from typing import Any

from cli.bench import cluster as bench
from cli.bench.clusterprocs import URI, Cluster, Worker, make_home, option_args, shoal
from cli.bench.s3server import free_port

NODES = 3


def _separate(scratch: str, epochs: bench.Epochs, cluster: Cluster, quota: int
              ) -> dict[str, Any]:  # fmt: skip
    top = os.path.join(scratch, "separate")
    mnts = [os.path.join(top, f"c{i}-mnt") for i in range(NODES)]
    homes = [make_home(os.path.join(top, f"c{i}-home"), bench.CLIENT_QUOTA) for i in range(NODES)]
    workers: list[Worker] = []
    try:
        for i in range(NODES):
            workers.append(Worker(cluster, os.path.join(top, f"w{i + 1}"), f"w{i + 1}", quota))

        def mount() -> list[str]:
            return cluster.mount_clients(homes, mnts)

        return {"processes": 2 * NODES, **bench.two_epochs(epochs, mount, lambda: _umount(mnts))}
    finally:
        for w in workers:
            w.stop()


def _combined(scratch: str, epochs: bench.Epochs, cluster: Cluster, quota: int) -> dict[str, Any]:
    top = os.path.join(scratch, "combined")
    mnts = [os.path.join(top, f"n{i}-mnt") for i in range(NODES)]
    homes = [make_home(os.path.join(top, f"n{i}-home"), quota) for i in range(NODES)]
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(NODES)]

    def mount() -> list[str]:
        for i, (home, mnt) in enumerate(zip(homes, mnts, strict=True)):
            os.makedirs(mnt, exist_ok=True)
            shoal("--home", home, "mount", "-o", "ro", *cluster.cluster_args(),
                  "--serve", addrs[i], "--id", f"n{i + 1}", *option_args(cluster.options),
                  URI, mnt)  # fmt: skip
        return mnts

    return {"processes": NODES, **bench.two_epochs(epochs, mount, lambda: _umount(mnts))}


def _umount(mnts: list[str]) -> None:
    for mnt in mnts:
        if os.path.ismount(mnt):
            shoal("umount", mnt)


def run(classes: int = 8, per_class: int = 50, shards: int = 2, shard_mib: int = 8,
        readers: int = 2, latency_ms: float = 20.0, worker_quota: int | None = None,
        workdir: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Both layouts, separate first; the worker's (and the combined node's) quota 3/5 of the
    dataset, as `shoal bench cluster`'s."""
    setup = bench.Setup(classes, per_class, shards, shard_mib, readers, latency_ms, workdir)
    try:
        quota = worker_quota if worker_quota is not None else setup.total * 3 // 5
        result: dict[str, Any] = {**setup.describe(), "worker_quota": quota}
        result["separate"] = _separate(setup.scratch, setup.epochs, setup.cluster, quota)
        result["combined"] = _combined(setup.scratch, setup.epochs, setup.cluster, quota)
    finally:
        setup.close()
        shutil.rmtree(setup.scratch, ignore_errors=True)
    sep, both = result["separate"], result["combined"]
    result["ratios"] = {
        f"combined_{phase}_files_per_s_vs_separate": both[phase]["files_per_s"]
        / sep[phase]["files_per_s"]
        for phase in ("cold", "warm")
    }
    return result


def format_table(result: dict[str, Any]) -> str:
    d = result["dataset"]
    lines = [
        f"{d['files']} files, {d['bytes'] / 2**20:.1f} MiB; {NODES} mounts of"
        f" {result['readers_per_client']} readers; {result['latency_ms']:.0f} ms added to each"
        f" S3 request; worker quota {result['worker_quota'] / 2**20:.1f} MiB",
        "",
        f"{'':<34} {'cold files/s':>12} {'GETs':>6} {'warm files/s':>12} {'GETs':>6}",
    ]
    for key, label in (("separate", f"{NODES} workers + {NODES} clients"),
                       ("combined", f"{NODES} combined (--serve)")):  # fmt: skip
        r = result[key]
        lines.append(f"{label:<34} {r['cold']['files_per_s']:>12,.0f} {r['cold']['ufs_gets']:>6}"
                     f" {r['warm']['files_per_s']:>12,.0f} {r['warm']['ufs_gets']:>6}")  # fmt: skip
    lines.append("")
    lines += [f"{name:<44} {value:6.2f}x" for name, value in result["ratios"].items()]
    return "\n".join(lines)

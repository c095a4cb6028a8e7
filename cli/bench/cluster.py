"""`shoal bench cluster`: epochs of an ImageNet-like dataset read through a cluster (etcd, 1, 2
and 3 `shoal worker`s, 2 `shoal mount --cluster` clients with several reader processes each),
beside one single-node `shoal mount` of the same store, all measured in the same run.

The store is moto's S3 on 127.0.0.1 behind the proxy `shoal bench read` uses, which adds
``latency_ms`` to every request and counts them: the UFS GETs of an epoch are the dataset's
objects asked for through it. Each configuration starts from empty caches: a cold epoch, then
the clients are mounted again (the kernel's page cache of the mount is gone; their small
near-caches stay) and a warm epoch is read from the workers. Each client reads every file once
per epoch, so a cluster epoch reads the dataset twice: its GETs say whether the store saw the
objects once or twice, and the reads the workers did not answer (a client's fallbacks to the
store, from its `shoal report`) are counted too. The workers' quota is, by default, below the
dataset's size: one worker cannot hold it, two or three together can.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cli.bench import clusterprocs as procs
from cli.bench.clusterprocs import BUCKET, URI, Cluster, Worker, make_home, option_args, shoal
from cli.bench.readers import figures, listing, make_dataset, timed

CLIENT_QUOTA = 4 << 20  # a near-cache: the workers hold the dataset
CLIENTS = 2
WORKER_COUNTS = (1, 2, 3)


def _dataset_bytes(paths: list[str]) -> int:
    return sum(os.path.getsize(p) for p in paths)


def _upload(endpoint: str, src: str, paths: list[str]) -> None:
    from cli.bench.s3server import s3_client

    client = s3_client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    for path in paths:
        with open(path, "rb") as f:
            client.put_object(Bucket=BUCKET, Key="ds/" + os.path.relpath(path, src), Body=f)


class Epochs:
    """Reads epochs through mounts and counts the store's GETs of each."""

    def __init__(self, proxy: Any, latency_ms: float, rels: list[str], readers: int) -> None:
        self.proxy, self.latency_ms, self.rels, self.readers = proxy, latency_ms, rels, readers

    def _reset(self) -> None:
        from cli.bench.faultproxy import Fault

        self.proxy.clear()  # its requests and its faults: the latency is added again
        self.proxy.add(Fault("delay", -1, seconds=self.latency_ms / 1000))

    def gets(self) -> int:
        prefix = f"/{BUCKET}/ds/"
        return sum(1 for m, p in self.proxy.requests
                   if m == "GET" and urlsplit(p).path.startswith(prefix))  # fmt: skip

    def read(self, mounts: list[str]) -> dict[str, float]:
        self._reset()
        paths = [os.path.join(m, rel) for m in mounts for rel in self.rels]
        seconds, total = timed(self.readers * len(mounts), paths)
        return {**figures(len(paths), seconds, total), "ufs_gets": self.gets()}


def two_epochs(epochs: Epochs, mount: Callable[[], list[str]], umount: Callable[[], None]
                ) -> dict[str, Any]:  # fmt: skip
    try:  # a mount that failed half-way is undone too
        cold = epochs.read(mount())
    finally:
        umount()
    try:  # the page cache of the mounts is gone with them
        warm = epochs.read(mount())
    finally:
        umount()
    return {"cold": cold, "warm": warm}


def _single(scratch: str, epochs: Epochs, options: dict[str, str], total: int) -> dict[str, Any]:
    home = make_home(os.path.join(scratch, "single"), 2 * total + (64 << 20))
    mnt = os.path.join(scratch, "single-mnt")
    os.makedirs(mnt)

    def mount() -> list[str]:
        shoal("--home", home, "mount", "-o", "ro", *option_args(options), URI, mnt)
        return [mnt]

    def umount() -> None:
        if os.path.ismount(mnt):
            shoal("umount", mnt)

    return {"workers": 0, "clients": 1, **two_epochs(epochs, mount, umount)}


def _cluster(scratch: str, epochs: Epochs, cluster: Cluster, count: int, quota: int
             ) -> dict[str, Any]:  # fmt: skip
    top = os.path.join(scratch, f"cluster{count}")
    workers: list[Worker] = []
    mnts = [os.path.join(top, f"c{i}-mnt") for i in range(CLIENTS)]
    homes = [make_home(os.path.join(top, f"c{i}-home"), CLIENT_QUOTA) for i in range(CLIENTS)]
    try:
        for i in range(count):
            workers.append(Worker(cluster, os.path.join(top, f"w{i + 1}"), f"w{i + 1}", quota))

        def mount() -> list[str]:
            return cluster.mount_clients(homes, mnts)

        fallbacks: list[int] = []

        def umount() -> None:
            try:
                fallbacks.append(sum(procs.client_fallbacks(home) for home in homes))
            finally:  # the mounts go whatever happened
                for mnt in mnts:
                    if os.path.ismount(mnt):
                        shoal("umount", mnt)

        out = {"workers": count, "clients": CLIENTS, **two_epochs(epochs, mount, umount)}
        out["cold"]["fallbacks"], out["warm"]["fallbacks"] = fallbacks
        out["bytes_per_worker"] = {w.name: w.used_bytes() for w in workers}
        return out
    finally:
        for w in workers:
            w.stop()


class Setup:
    """A bench's store, proxy and etcd, and its dataset uploaded: moto's S3 behind the counting
    proxy, the cluster's token and the store's secret in files of the scratch directory."""

    def __init__(self, classes: int, per_class: int, shards: int, shard_mib: int,
                 readers: int, latency_ms: float, workdir: str | None) -> None:  # fmt: skip
        from cli.bench.etcdserver import start_etcd
        from cli.bench.faultproxy import FaultProxy
        from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, require_moto, start_s3_server

        require_moto()
        self.scratch = scratch = tempfile.mkdtemp(prefix="shoal-bench-cluster-", dir=workdir)
        src = os.path.join(scratch, "src")
        make_dataset(src, classes, per_class, shards, shard_mib)
        small, large = listing(src)
        self.files, self.total = len(small) + len(large), _dataset_bytes(small + large)
        self.readers, self.latency_ms = readers, latency_ms
        secret, token = os.path.join(scratch, "s3.secret"), os.path.join(scratch, "cluster.token")
        for path, text in ((secret, SECRET_KEY), (token, "bench-token-" + os.urandom(8).hex())):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(text + "\n")
        self.server = start_s3_server()
        self.proxy = FaultProxy(self.server.endpoint).start()
        self.etcd = start_etcd(Path(scratch) / "etcd")
        try:
            _upload(self.server.endpoint, src, small + large)
        except BaseException:
            self.close()
            raise
        options = {"endpoint": self.proxy.endpoint, "path_style": "true", "region": "us-east-1",
                   "access_key": ACCESS_KEY, "secret_key_file": secret}  # fmt: skip
        self.options = options
        rels = [os.path.relpath(p, src) for p in small + large]
        self.epochs = Epochs(self.proxy, latency_ms, rels, readers)
        with open(token) as f:
            self.cluster = Cluster(self.etcd.cluster_url("bench"), token, f.read().strip(), options)

    def describe(self) -> dict[str, Any]:
        return {"dataset": {"files": self.files, "bytes": self.total},
                "readers_per_client": self.readers, "latency_ms": self.latency_ms}  # fmt: skip

    def close(self) -> None:
        self.etcd.stop()
        self.proxy.stop()
        self.server.stop()


def run(classes: int = 8, per_class: int = 50, shards: int = 2, shard_mib: int = 8,
        readers: int = 2, latency_ms: float = 20.0, worker_quota: int | None = None,
        workdir: str | None = None) -> dict[str, Any]:  # fmt: skip
    setup = Setup(classes, per_class, shards, shard_mib, readers, latency_ms, workdir)
    try:
        quota = worker_quota if worker_quota is not None else setup.total * 3 // 5
        result: dict[str, Any] = {**setup.describe(), "worker_quota": quota}
        result["single"] = _single(setup.scratch, setup.epochs, setup.options, setup.total)
        for count in WORKER_COUNTS:
            result[f"cluster_{count}"] = _cluster(setup.scratch, setup.epochs, setup.cluster,
                                                  count, quota)  # fmt: skip
    finally:
        setup.close()
        shutil.rmtree(setup.scratch, ignore_errors=True)
    result["ratios"] = ratios(result)
    return result


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """Each cluster configuration against the single node: files/s cold and warm, and GETs per
    epoch (the single node reads the dataset once per epoch, a cluster's two clients twice)."""
    single = result["single"]
    out: dict[str, float] = {}
    for count in WORKER_COUNTS:
        mine = result[f"cluster_{count}"]
        for phase in ("cold", "warm"):
            out[f"cluster_{count}_{phase}_files_per_s_vs_single"] = (
                mine[phase]["files_per_s"] / single[phase]["files_per_s"]
            )
        out[f"cluster_{count}_cold_gets_vs_single"] = mine["cold"]["ufs_gets"] / max(
            1, single["cold"]["ufs_gets"]
        )
    return out


def format_table(result: dict[str, Any]) -> str:
    d = result["dataset"]
    lines = [
        f"{d['files']} files, {d['bytes'] / 2**20:.1f} MiB; {result['readers_per_client']} readers"
        f" per client; {result['latency_ms']:.0f} ms added to each S3 request; worker quota"
        f" {result['worker_quota'] / 2**20:.1f} MiB",
        "",
        f"{'':<24} {'cold files/s':>12} {'MiB/s':>8} {'GETs':>6} {'fallb.':>6}"
        f" {'warm files/s':>12} {'MiB/s':>8} {'GETs':>6} {'fallb.':>6}  bytes per worker (MiB)",
    ]
    for key in ("single", *(f"cluster_{n}" for n in WORKER_COUNTS)):
        r = result[key]
        label = ("single node, 1 mount" if key == "single"
                 else f"{r['workers']} workers, {r['clients']} mounts")  # fmt: skip
        cold, warm = r["cold"], r["warm"]
        held = " ".join(f"{v / 2**20:.1f}" for v in r.get("bytes_per_worker", {}).values())
        lines.append(
            f"{label:<24} {cold['files_per_s']:>12,.0f} {cold['mib_per_s']:>8,.1f}"
            f" {cold['ufs_gets']:>6} {cold.get('fallbacks', '-'):>6}"
            f" {warm['files_per_s']:>12,.0f} {warm['mib_per_s']:>8,.1f}"
            f" {warm['ufs_gets']:>6} {warm.get('fallbacks', '-'):>6}  {held}"
        )
    lines.append("")
    lines += [f"{name:<44} {value:6.2f}x" for name, value in result["ratios"].items()]
    return "\n".join(lines)

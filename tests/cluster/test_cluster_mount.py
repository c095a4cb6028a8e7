"""Cluster mode end to end with real processes: etcd, moto's S3 over HTTP behind a proxy that
logs every request, three `shoal worker`s whose quotas each hold less than the dataset, and two
`shoal mount --cluster` FUSE clients reading an ImageNet-like dataset through them."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from cli.bench.etcdserver import EtcdServer
from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import S3Server
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import Members
from tests.cluster.conftest import WorkerProcess, cluster_client, s3_dataset

WORKER_QUOTA = 24 << 20
CLIENT_QUOTA = 4 << 20


def _imagenet_like(rng: random.Random) -> dict[str, bytes]:
    """20 classes of 15 JPEG-sized files, and a few files of some MiB."""
    files = {
        f"train/n{c:08d}/n{c:08d}_{i}.JPEG": rng.randbytes(rng.randint(50_000, 150_000))
        for c in range(20)
        for i in range(15)
    }
    for i in range(3):
        files[f"val/big_{i}.tar"] = rng.randbytes((1 << 20) + rng.randint(0, 2 << 20))
    return files


def _read_all(root: Path, names: list[str], out: dict[str, bytes], errors: list[str]) -> None:
    for name in names:
        try:
            out[name] = (root / name).read_bytes()
        except OSError as exc:
            errors.append(f"{name}: {exc}")


def test_two_clients_read_a_dataset_through_three_workers_fetching_each_object_once(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    rng = random.Random(19)
    files = _imagenet_like(rng)
    total = sum(len(d) for d in files.values())
    assert WORKER_QUOTA < total < 3 * WORKER_QUOTA  # none holds it alone; together they do
    bucket = f"cluster-{os.getpid()}-{rng.randrange(1 << 30):x}"
    # Everyone reaches the store through the proxy, which logs each request.
    options = s3_dataset(s3_server, proxy, tmp_path, bucket, files)
    uri, url = f"s3://{bucket}/ds", etcd.cluster_url("imagenet")
    for name in ("w1", "w2", "w3"):
        workers.append(WorkerProcess(tmp_path, name, WORKER_QUOTA))
        workers[-1].start(url, token_file, uri, options)
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), uri)
    members.close()  # (its thread ends with the test process; only its first view is used)
    assert set(members.workers) == {"w1", "w2", "w3"}

    clients = []
    try:
        for name in ("c1", "c2"):
            clients.append(cluster_client(tmp_path, name, uri, options, url, token_file,
                                          CLIENT_QUOTA))  # fmt: skip
        proxy.clear()  # what the listing and mounting asked is not what is counted

        # Both clients at once, in different orders: the same file is often asked of its
        # owner by both while its block is on its way.
        got: list[dict[str, bytes]] = [{}, {}]
        errors: list[str] = []
        threads = []
        for i, client in enumerate(clients):
            for part in range(2):
                names = sorted(files)
                random.Random(i * 10 + part).shuffle(names)
                t = threading.Thread(target=_read_all,
                                     args=(client.path, names, got[i], errors))  # fmt: skip
                threads.append(t)
                t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:5]
        for i in range(2):
            bad = [name for name, data in files.items() if got[i].get(name) != data]
            assert not bad, f"client {i + 1}: {len(bad)} files differ, e.g. {bad[:3]}"

        gets = Counter(
            urlsplit(path).path.removeprefix(f"/{bucket}/ds/")
            for method, path in proxy.requests
            if method == "GET" and urlsplit(path).path.startswith(f"/{bucket}/ds/")
        )
        assert set(gets) == set(files), sorted(set(files) - set(gets))[:5]
        twice = {name: n for name, n in gets.items() if n != 1}
        assert not twice, f"objects fetched more than once: {twice}"
        shares = [w.cached_bytes() for w in workers]
        assert all(0 < share <= WORKER_QUOTA for share in shares), shares
        assert sum(shares) >= total  # every file is held by a worker
    finally:
        for client in clients:
            client.teardown()

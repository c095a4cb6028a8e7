"""`shoal fs load --cluster` through a client's mount: every file loaded by its owner, each
object fetched from the store once, and an epoch through the client afterwards all hits at the
workers, with no GET at the store."""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from cli.bench.etcdserver import EtcdServer
from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import S3Server
from engine.cluster.ring import HashRing
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import TOKEN, WorkerProcess, cluster_client, get, s3_dataset


def _object_gets(proxy: FaultProxy, bucket: str) -> Counter[str]:
    return Counter(
        urlsplit(path).path.removeprefix(f"/{bucket}/ds/")
        for method, path in proxy.requests
        if method == "GET" and urlsplit(path).path.startswith(f"/{bucket}/ds/")
    )


def _status(worker: WorkerProcess) -> dict[str, int]:
    got = get(worker.addr, "/v1/status", {"Authorization": f"Bearer {TOKEN}"})
    assert got.status == 200
    status: dict[str, int] = json.loads(got.data)
    return status


def test_fs_load_cluster_puts_each_file_on_its_owner_and_an_epoch_then_gets_nothing(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    rng = random.Random(4)
    files = {f"train/c{i % 4}/img_{i:03}.JPEG": rng.randbytes(rng.randint(20_000, 120_000))
             for i in range(40)}  # fmt: skip
    files["val/big.tar"] = rng.randbytes(5 << 20)  # more than one block and one load read
    bucket = f"load-{os.getpid()}-{rng.randrange(1 << 30):x}"
    options = s3_dataset(s3_server, proxy, tmp_path, bucket, files)
    uri, url = f"s3://{bucket}/ds", etcd.cluster_url("load")
    for name in ("w1", "w2", "w3"):
        workers.append(WorkerProcess(tmp_path, name, 32 << 20))
        workers[-1].start(url, token_file, uri, options)
    ring = HashRing(w.name for w in workers)
    owned = {w.name: sum(len(d) for n, d in files.items() if ring.owner(n) == w.name)
             for w in workers}  # fmt: skip

    client = cluster_client(tmp_path, "c", uri, options, url, token_file, 1 << 20)
    home, mnt = client.home, client.path
    try:
        proxy.clear()
        done = shoal("fs", "load", "-R", "--cluster", url, "--cluster-token-file",
                     str(token_file), "/", home=home)  # fmt: skip
        assert f"{len(files)} file(s) loaded" in done.stdout and "on 3 worker(s)" in done.stdout
        refused = shoal("fs", "load", "-R", "--cluster", url, "--cluster-token-stdin", "/",
                        home=home, input=TOKEN + "\n", expect=2)  # fmt: skip
        assert "--cluster-token-file" in refused.stderr, refused.stderr  # not the daemon's stdin
        gets = _object_gets(proxy, bucket)
        assert set(gets) == set(files), sorted(set(files) - set(gets))[:5]
        big = (5 << 20) // (4 << 20) + 1  # ranged GETs of the big file: one per load read
        assert all(n == 1 for name, n in gets.items() if name != "val/big.tar"), gets
        assert gets["val/big.tar"] <= big, gets
        for w in workers:  # each file on its owner, and only there
            assert w.cached_bytes() == owned[w.name], (w.name, w.cached_bytes(), owned)
        before = {w.name: _status(w) for w in workers}

        proxy.clear()
        for name, data in files.items():
            assert (mnt / name).read_bytes() == data
        assert not _object_gets(proxy, bucket), "the epoch after the load asked the store"
        for w in workers:
            after = _status(w)
            assert after["cache_misses"] == before[w.name]["cache_misses"], w.name
            # Served from its cache: read through its service, or located for the client's
            # short-circuit reads of its tier files (docs/cluster.md).
            located = after["service"]["requests"].get("locate", 0)  # type: ignore[index]
            was = before[w.name]["service"]["requests"].get("locate", 0)  # type: ignore[index]
            assert after["cache_hits"] > before[w.name]["cache_hits"] or located > was, w.name

        view = json.loads(shoal("report", "--json", home=home).stdout)["cluster"]
        assert view["workers"] == ["w1", "w2", "w3"] and view["degraded"] is False, view
        assert view["remote_reads"] >= len(files) and view["fallbacks"] == 0, view
        etcd.stop()  # the client keeps its ring and says it is degraded
        deadline = time.monotonic() + 30
        while not json.loads(shoal("report", "--json", home=home).stdout)["cluster"]["degraded"]:
            assert time.monotonic() < deadline, "the client never said it was degraded"
            time.sleep(0.2)
        assert "cluster  DEGRADED" in shoal("report", home=home).stdout
    finally:
        client.teardown()

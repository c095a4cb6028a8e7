"""A worker killed with kill -9 and started again on its home, with its id, owns the same files
and serves them from its cache: the store sees no second GET of them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from cli.bench.etcdserver import EtcdServer
from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server, s3_client
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import LEASE_TTL_S, Members
from engine.cluster.remote import ClusterUnderFS
from tests.cluster.conftest import TOKEN, WorkerProcess
from ufs.uri import open_ufs


def test_a_worker_killed_and_restarted_serves_its_cache_again(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    bucket = f"rejoin-{os.getpid()}-{os.urandom(3).hex()}"
    s3 = s3_client(s3_server.endpoint)
    s3.create_bucket(Bucket=bucket)
    files = {f"d{i % 3}/f{i}.bin": os.urandom(30_000 + 101 * i) for i in range(30)}
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"ds/{name}", Body=data)
    secret = tmp_path / "s3.secret"
    secret.write_text(SECRET_KEY)
    secret.chmod(0o600)
    options = {"endpoint": proxy.endpoint, "path_style": "true", "region": "us-east-1",
               "access_key": ACCESS_KEY, "secret_key_file": str(secret)}  # fmt: skip
    uri, url = f"s3://{bucket}/ds", etcd.cluster_url("rejoin")
    worker = WorkerProcess(tmp_path, "w1", 16 << 20)
    workers.append(worker)
    worker.start(url, token_file, uri, options)
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), uri)
    public = {k: v for k, v in options.items() if k not in ("access_key", "secret_key_file")}
    store = open_ufs(uri, public, {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
    try:
        reader = ClusterUnderFS(store, members, TOKEN)
        for name, data in files.items():
            assert reader.read(name, 0, 1 << 20) == data
        fetched = [p for m, p in proxy.requests if m == "GET" and "/ds/" in urlsplit(p).path]
        assert len(fetched) == len(files)

        # A miss is answered first and stored after (engine/cache/storer.py): killed before
        # its store, a block is fetched again. Killed once every block is in its tier.
        deadline = time.monotonic() + 30
        while worker.cached_bytes() < sum(len(d) for d in files.values()):
            assert time.monotonic() < deadline, worker.cached_bytes()
            time.sleep(0.05)
        worker.kill9()
        assert members.wait_for(lambda w: not w, LEASE_TTL_S + 10), members.workers
        proxy.clear()
        worker.start(url, token_file, uri, options)  # its home, its id, its port
        assert members.wait_for(lambda w: set(w) == {"w1"}, 10), members.workers
        reader = ClusterUnderFS(store, members, TOKEN)  # no worker marked as failed
        for name, data in files.items():
            assert reader.read(name, 0, 1 << 20) == data
        assert (reader.remote_reads, reader.fallbacks) == (len(files), 0)
        again = [p for m, p in proxy.requests if m == "GET" and "/ds/" in urlsplit(p).path]
        assert not again, f"{len(again)} objects fetched again, e.g. {again[:3]}"
    finally:
        members.close()

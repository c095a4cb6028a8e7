"""A worker killed with kill -9 and started again on its home, with its id, owns the same files
and serves them from its cache: the store sees no second GET of them (through the connector,
and through a FUSE client's mount)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from cli.bench.etcdserver import EtcdServer
from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import LEASE_TTL_S, Members
from engine.cluster.remote import SUSPECT_S, ClusterUnderFS
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import TOKEN, WorkerProcess, cluster_client, get, s3_dataset
from ufs.uri import open_ufs


def _one_worker(etcd: EtcdServer, s3_server: S3Server, proxy: FaultProxy, token_file: Path,
                workers: list[WorkerProcess], tmp_path: Path, tag: str
                ) -> tuple[dict[str, bytes], dict[str, str], str, str, WorkerProcess]:  # fmt: skip
    """30 files in a bucket of their own and one worker, w1, started on them: (the files,
    the store's options, its uri, the cluster's url, the worker)."""
    bucket = f"{tag}-{os.getpid()}-{os.urandom(3).hex()}"
    files = {f"d{i % 3}/f{i}.bin": os.urandom(30_000 + 101 * i) for i in range(30)}
    options = s3_dataset(s3_server, proxy, tmp_path, bucket, files)
    uri, url = f"s3://{bucket}/ds", etcd.cluster_url(tag)
    worker = WorkerProcess(tmp_path, "w1", 16 << 20)
    workers.append(worker)
    worker.start(url, token_file, uri, options)
    return files, options, uri, url, worker


def test_a_worker_killed_and_restarted_serves_its_cache_again(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    files, options, uri, url, worker = _one_worker(etcd, s3_server, proxy, token_file,
                                                   workers, tmp_path, "rejoin")  # fmt: skip
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


def _client_view(home: Path) -> dict[str, int]:
    view: dict[str, int] = json.loads(shoal("report", "--json", home=home).stdout)["cluster"]
    return view


def _read_cold(path: Path) -> bytes:
    """The file's bytes from the daemon, not from pages the kernel kept of an earlier read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        size = os.fstat(fd).st_size
        return os.pread(fd, size + 1, 0)
    finally:
        os.close(fd)


def test_a_worker_killed_mid_epoch_through_a_mount_serves_that_mount_again(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """A FUSE client that keeps nothing itself (read_type NO_CACHE) reads epochs through one
    worker, killed with kill -9 in the middle of one (its reads go to the store meanwhile) and
    started again on its home with its id: the next epoch is served from its cache, 0 GETs
    at the store."""
    files, options, uri, url, worker = _one_worker(etcd, s3_server, proxy, token_file,
                                                   workers, tmp_path, "rejoinm")  # fmt: skip
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), uri)
    client = cluster_client(tmp_path, "c", uri, {**options, "read_type": "NO_CACHE"}, url,
                            token_file)  # fmt: skip
    names = sorted(files)
    try:
        for name in names:  # epoch 0: the worker's cache filled
            assert _read_cold(client.path / name) == files[name]
        deadline = time.monotonic() + 30
        while worker.cached_bytes() < sum(len(d) for d in files.values()):
            assert time.monotonic() < deadline, worker.cached_bytes()
            time.sleep(0.05)
        for name in names[:10]:  # epoch 1, killed a third of the way
            assert _read_cold(client.path / name) == files[name]
        worker.kill9()
        killed = time.monotonic()
        for name in names[10:]:  # from the store: no error
            assert _read_cold(client.path / name) == files[name]
        assert members.wait_for(lambda w: not w, LEASE_TTL_S + 10), members.workers
        worker.start(url, token_file, uri, options)  # its home, its id, its port
        assert members.wait_for(lambda w: set(w) == {"w1"}, 10), members.workers
        # The client skips a worker that failed it for SUSPECT_S; its ring sees it again too.
        time.sleep(max(0.0, killed + SUSPECT_S + 1 - time.monotonic()))
        proxy.clear()
        before = _client_view(client.home)
        for name in names:  # epoch 2
            assert _read_cold(client.path / name) == files[name]
        again = [p for m, p in proxy.requests if m == "GET" and "/ds/" in urlsplit(p).path]
        assert not again, f"{len(again)} objects fetched again, e.g. {again[:3]}"
        # Every file of epoch 2 came from the restarted worker (its service or its tier files).
        after = _client_view(client.home)
        assert after["fallbacks"] == before["fallbacks"], (before, after)
        assert after["remote_reads"] >= before["remote_reads"] + len(files), (before, after)
        reply = get(worker.addr, "/v1/status", {"Authorization": f"Bearer {TOKEN}"})
        served = json.loads(reply.data)["service"]["requests"]
        assert served.get("locate", 0) + served.get("read", 0) > 0, served
    finally:
        client.teardown()
        members.close()

"""kill -9 of a worker while FUSE clients read through the cluster: no reader sees an error or
a wrong byte (its files come from the next worker or the store), and once its lease expires
the ring has the others only."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cli.bench.etcdserver import EtcdServer
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import LEASE_TTL_S, Members
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import WorkerProcess
from tests.fuse.mounting import Mounted
from tests.homes import write_config


def _start(etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path,
           files: dict[str, bytes], tag: str, count: int) -> tuple[str, str]:  # fmt: skip
    """``files`` in a local store and ``count`` workers (w1...) of 16 MiB on it: (uri, url)."""
    ufs = tmp_path / "ufs"
    for name, data in files.items():
        (ufs / name).parent.mkdir(parents=True, exist_ok=True)
        (ufs / name).write_bytes(data)
    uri, url = str(ufs), etcd.cluster_url(tag)
    for i in range(count):
        workers.append(WorkerProcess(tmp_path, f"w{i + 1}", 16 << 20))
        workers[-1].start(url, token_file, uri, {})
    return uri, url


def _client_home(tmp_path: Path, uri: str, quota: int) -> Mounted:
    """A client's home (one SSD tier of ``quota``), not mounted yet."""
    home, mnt = tmp_path / "c-home", tmp_path / "c-mnt"
    client = Mounted(home, uri, mnt)
    home.mkdir()
    write_config(home, tiers=[("SSD", home / "cache", quota)])
    return client


def test_no_reader_errs_when_a_worker_is_killed_mid_epoch(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    files = {f"c{c:02d}/img{i:03d}.jpg": os.urandom(40_000 + 37 * i)
             for c in range(8) for i in range(25)}  # fmt: skip
    uri, url = _start(etcd, token_file, workers, tmp_path, files, "epoch", 3)
    client = _client_home(tmp_path, uri, 2 << 20)
    home, mnt = client.home, client.path
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), uri)
    try:
        shoal("mount", "--cluster", url, "--cluster-token-file", str(token_file), uri, str(mnt),
              home=home)  # fmt: skip
        names = sorted(files)
        done: list[str] = []
        errors: list[str] = []

        def read(part: list[str]) -> None:
            for name in part:
                try:
                    if (mnt / name).read_bytes() != files[name]:
                        errors.append(f"{name}: wrong bytes")
                except OSError as exc:
                    errors.append(f"{name}: {exc}")
                done.append(name)

        threads = [threading.Thread(target=read, args=(names[i::3],)) for i in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(done) < len(names) // 4:  # a quarter of the epoch read: then the kill
            assert time.monotonic() < deadline and not errors, errors[:3]
            time.sleep(0.01)
        workers[1].kill9()
        left = len(names) - len(done)
        for t in threads:
            t.join()
        assert left > 0 and len(done) == len(names)
        assert not errors, errors[:5]
        assert members.wait_for(lambda w: set(w) == {"w1", "w3"}, LEASE_TTL_S + 10)
    finally:
        members.close()
        client.teardown()


def test_a_client_home_mounted_again_reads_through_the_workers(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """A home that already has its local store mounted opens it at start, in the background
    (its leftovers swept): that connector too must read through the cluster."""
    files = {f"d{i % 4}/f{i}.bin": os.urandom(30_000 + 11 * i) for i in range(40)}
    uri, url = _start(etcd, token_file, workers, tmp_path, files, "again", 2)
    client = _client_home(tmp_path, uri, 16 << 20)
    home, mnt = client.home, client.path
    args = ["mount", "--cluster", url, "--cluster-token-file", str(token_file), uri, str(mnt)]
    try:
        shoal(*args, home=home)
        client.umount()
        assert sum(w.cached_bytes() for w in workers) == 0  # nothing read yet
        shoal(*args, home=home)
        for name, data in files.items():
            assert (mnt / name).read_bytes() == data
        deadline = time.monotonic() + 30  # the workers store their misses in the background
        while sum(w.cached_bytes() for w in workers) < sum(map(len, files.values())):
            assert time.monotonic() < deadline, [w.cached_bytes() for w in workers]
            time.sleep(0.05)
    finally:
        client.teardown()

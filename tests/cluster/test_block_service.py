"""The block service's misses: concurrent clients asking a worker for the same block while its
store is slow cause one GET, and the block is then served from the worker's cache."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from cli.bench.etcdserver import EtcdServer
from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from tests.cluster.conftest import TOKEN, WorkerProcess, get, s3_dataset
from ufs.local import LocalUnderFS


def test_concurrent_clients_of_one_block_cause_one_get(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    bucket = f"flight-{os.getpid()}-{os.urandom(3).hex()}"
    first, wanted = os.urandom(10_000), os.urandom(300_000)
    files = {"d/first.bin": first, "d/wanted.bin": wanted}
    options = s3_dataset(s3_server, proxy, tmp_path, bucket, files)
    workers.append(WorkerProcess(tmp_path, "w1", 16 << 20))
    workers[0].start(etcd.cluster_url("flight"), token_file, f"s3://{bucket}/ds", options)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    addr = workers[0].addr
    # The directory listed (and its first file read) before the store turns slow.
    assert get(addr, "/v1/read?path=d/first.bin&offset=0&length=4194304", auth).data == first
    proxy.clear()
    proxy.add(Fault("delay", times=-1, seconds=1.0, method="GET"))
    got: list[bytes] = []

    def ask() -> None:
        got.append(get(addr, "/v1/read?path=d/wanted.bin&offset=0&length=4194304", auth).data)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [wanted] * 4
    objects = [p for m, p in proxy.requests if m == "GET" and urlsplit(p).path.endswith(".bin")]
    assert len(objects) == 1, objects
    status = json.loads(get(addr, "/v1/status", auth).data)
    assert status["flight_joins"] >= 1, status  # the others waited for the first one's fetch
    deadline = time.monotonic() + 30  # stored in the background after the replies
    while workers[0].cached_bytes() < len(first) + len(wanted):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert get(addr, "/v1/read?path=d/wanted.bin&offset=5&length=10", auth).data == wanted[5:15]
    objects = [p for m, p in proxy.requests if m == "GET" and urlsplit(p).path.endswith(".bin")]
    assert len(objects) == 1, objects  # the last read was a hit


def test_a_read_carrying_another_version_is_refetched_or_refused(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The worker holds version 1 of a file in its cache; the store has version 2 (changed
    behind its back). A read expecting version 2 gets version 2's bytes (the worker syncs the
    file first); one expecting a version the store does not hold is a 409 (the client's view
    is the stale one: it asks the store)."""
    ufs = tmp_path / "ufs"
    (ufs / "d").mkdir(parents=True)
    old, new = os.urandom(200_000), os.urandom(200_000)
    (ufs / "d/f.bin").write_bytes(old)
    workers.append(WorkerProcess(tmp_path, "w1", 16 << 20))
    workers[0].start(etcd.cluster_url("versions"), token_file, str(ufs), {})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    addr = workers[0].addr
    whole = "/v1/read?path=d/f.bin&offset=0&length=4194304"
    assert get(addr, whole, auth).data == old
    deadline = time.monotonic() + 30  # stored in the background after the reply
    while workers[0].cached_bytes() < len(old):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (ufs / "d/f.bin").write_bytes(new)
    store = LocalUnderFS(str(ufs))
    fingerprint = store.stat("d/f.bin").fingerprint
    store.close()
    assert get(addr, whole, auth).data == old  # no version asked: the worker's cached one
    reply = get(addr, f"{whole}&fingerprint={quote(fingerprint)}", auth)
    assert reply.status == 200 and reply.data == new
    reply = get(addr, f"{whole}&fingerprint=not-a-version-the-store-holds", auth)
    assert reply.status == 409

"""Short-circuit reads in cluster mode: a client on the owner's host reads the owner's cached
blocks from its tier files (located through ``/v1/locate``), not over ``/v1/read``; a block
gone or changed since it was located is read over HTTP instead; ``cluster.short_circuit =
false`` reads over HTTP only."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cli.bench.etcdserver import EtcdServer
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import Members
from engine.cluster.remote import ClusterUnderFS
from engine.cluster.shortread import located, read_located
from tests.cluster.conftest import TOKEN, WorkerProcess, cluster_client, get
from ufs.local import LocalUnderFS

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BLOCK = 64 << 10  # several blocks a file: ranges across block boundaries


def _dataset(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    ufs = tmp_path / "ufs"
    files = {f"d{i % 3}/f{i}.bin": os.urandom(150_000 + 997 * i) for i in range(12)}
    for name, data in files.items():
        (ufs / name).parent.mkdir(parents=True, exist_ok=True)
        (ufs / name).write_bytes(data)
    return ufs, files


def _warm(worker: WorkerProcess, files: dict[str, bytes]) -> None:
    """Every file read once through the worker's block service, then stored in its tier."""
    for name, data in files.items():
        reply = get(worker.addr, f"/v1/read?path={name}&offset=0&length={len(data)}", AUTH)
        assert reply.data == data
    deadline = time.monotonic() + 30
    while worker.cached_bytes() < sum(map(len, files.values())):
        assert time.monotonic() < deadline, worker.cached_bytes()
        time.sleep(0.05)


def _served(worker: WorkerProcess) -> dict[str, int]:
    status = json.loads(get(worker.addr, "/v1/status", AUTH).data)
    requests: dict[str, int] = status["service"]["requests"]
    return {k: requests.get(k, 0) for k in ("read", "locate")}


def _one_worker(etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess],
                tmp_path: Path, name: str) -> tuple[str, str, dict[str, bytes]]:  # fmt: skip
    ufs, files = _dataset(tmp_path)
    uri, url = str(ufs), etcd.cluster_url(name)
    workers.append(WorkerProcess(tmp_path, "w1", 16 << 20))
    workers[0].start(url, token_file, uri, {"block_size": str(BLOCK)})
    _warm(workers[0], files)
    return uri, url, files


@contextmanager
def _reader(etcd: EtcdServer, url: str, uri: str) -> Iterator[ClusterUnderFS]:
    """A connector reading ``uri`` through the cluster once its one worker, w1, is seen."""
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), uri)
    store = LocalUnderFS(uri)
    try:
        assert members.wait_for(lambda w: set(w) == {"w1"}, 10)
        yield ClusterUnderFS(store, members, TOKEN)
    finally:
        store.close()
        members.close()


def test_a_client_on_the_owners_host_reads_its_tier_files_directly(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    uri, url, files = _one_worker(etcd, token_file, workers, tmp_path, "short")
    before = _served(workers[0])
    with _reader(etcd, url, uri) as reader:
        for name, data in files.items():
            assert reader.read(name, 0, 1 << 20) == data
            assert reader.read(name, BLOCK - 7, BLOCK + 20) == data[BLOCK - 7 : 2 * BLOCK + 13]
            assert reader.read(name, len(data) - 5, 100) == data[-5:]
        after = _served(workers[0])
        assert after["read"] == before["read"], (before, after)  # not one byte over HTTP
        assert after["locate"] == before["locate"] + 3 * len(files), (before, after)
        assert (reader.short_reads, reader.remote_reads, reader.fallbacks) == (36, 36, 0)


def test_a_block_gone_or_changed_after_it_was_located_is_read_over_http(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    uri, url, files = _one_worker(etcd, token_file, workers, tmp_path, "gone")
    evicted, rewritten = "d0/f0.bin", "d1/f1.bin"
    answers = {}
    for name in (evicted, rewritten):
        reply = get(workers[0].addr, f"/v1/locate?path={name}&offset=0&length=1048576", AUTH)
        answer = located(reply)
        assert answer is not None and len(answer["blocks"]) == 3, reply.data
        assert read_located(answer, 0, 1 << 20) == files[name]
        answers[name] = answer
    # After the locate: one block's file removed, another's rewritten in place (same length).
    os.unlink(answers[evicted]["blocks"][1]["path"])
    second = Path(answers[rewritten]["blocks"][2]["path"])
    damaged = bytearray(second.read_bytes())
    damaged[10] ^= 0xFF
    second.write_bytes(bytes(damaged))
    assert read_located(answers[evicted], 0, 1 << 20) is None
    assert read_located(answers[rewritten], 0, 1 << 20) is None
    before = _served(workers[0])
    with _reader(etcd, url, uri) as reader:
        for name in (evicted, rewritten):
            assert reader.read(name, 0, 1 << 20) == files[name]
        assert (reader.remote_reads, reader.short_reads, reader.fallbacks) == (2, 0, 0)
        assert _served(workers[0])["read"] == before["read"] + 2


def test_short_circuit_off_reads_through_the_block_service_only(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Through FUSE clients: the default one short-circuits, one with cluster.short_circuit =
    false asks the worker's ``/v1/read`` for every file and never locates."""
    uri, url, files = _one_worker(etcd, token_file, workers, tmp_path, "off")
    for name, short in (("on", "true"), ("off", "false")):
        before = _served(workers[0])
        options = {} if short == "true" else {"cluster.short_circuit": "false"}
        client = cluster_client(tmp_path, name, uri, options, url, token_file, quota=16 << 20)
        try:
            for rel, data in files.items():
                assert (client.path / rel).read_bytes() == data
        finally:
            client.teardown()
        after = _served(workers[0])
        if short == "true":
            assert after["read"] == before["read"] and after["locate"] > before["locate"]
        else:
            assert after["locate"] == before["locate"] and after["read"] >= before["read"] + 12


def test_a_located_version_is_read_again_without_asking_the_worker(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """A client that knows the version it reads keeps the blocks' locations: its second epoch
    asks the worker nothing. A kept location whose file was rewritten since is forgotten and
    that file read over HTTP, right."""
    uri, url, files = _one_worker(etcd, token_file, workers, tmp_path, "kept")
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), uri)
    store = LocalUnderFS(uri)
    try:
        assert members.wait_for(lambda w: set(w) == {"w1"}, 10)
        reader = ClusterUnderFS(store, members, TOKEN)
        reader.expect = lambda rel: store.stat(rel).fingerprint
        before = _served(workers[0])
        for _ in range(2):
            for name, data in files.items():
                assert reader.read(name, 0, 1 << 20) == data
                assert reader.read(name, 5, BLOCK) == data[5 : BLOCK + 5]
        after = _served(workers[0])
        assert after == {"read": before["read"], "locate": before["locate"] + len(files)}
        assert reader.short_reads == 4 * len(files)
        name = "d2/f2.bin"
        reply = get(workers[0].addr, f"/v1/locate?path={name}&offset=0&length=1048576", AUTH)
        answer = located(reply)
        assert answer is not None
        first = Path(answer["blocks"][0]["path"])
        damaged = bytearray(first.read_bytes())
        damaged[0] ^= 0x01
        first.write_bytes(bytes(damaged))
        assert reader.read(name, 0, 1 << 20) == files[name]
        assert _served(workers[0])["read"] == before["read"] + 1  # the worker's store read it
        assert reader.read(name, 0, 1 << 20) == files[name]
    finally:
        store.close()
        members.close()

"""Membership through a real etcd and real `shoal worker` processes: registration under a
lease, a client's view following it, a kill -9 costing readers nothing, the token."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from cli.bench.etcdserver import EtcdServer
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import LEASE_TTL_S, Members
from engine.cluster.remote import ClusterUnderFS
from tests.cluster.conftest import TOKEN, WorkerProcess, get
from ufs.uri import open_ufs


def _dataset(root: Path) -> dict[str, bytes]:
    files = {f"c{c}/f{i}.bin": os.urandom(20_000 + 997 * i) for c in range(4) for i in range(6)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_a_killed_worker_costs_no_read_and_leaves_when_its_lease_expires(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ufs = tmp_path / "ufs"
    files = _dataset(ufs)
    uri, url = str(ufs), etcd.cluster_url("t1")
    for name in ("w1", "w2"):
        workers.append(WorkerProcess(tmp_path, name, 8 << 20))
        workers[-1].start(url, token_file, uri, {})
    # The client names the store otherwise than the workers do: it is the same store.
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), f"file://{ufs}/")
    try:
        assert members.wait_for(lambda w: set(w) == {"w1", "w2"}, 10), members.workers
        reader = ClusterUnderFS(open_ufs(uri, {}, None), members, TOKEN)
        for rel, data in files.items():
            assert reader.read(rel, 0, 1 << 20) == data
        assert (reader.remote_reads, reader.fallbacks) == (len(files), 0)
        assert all(w.cached_bytes() > 0 for w in workers)  # the ring gave each a share

        workers[0].kill9()
        # Its lease still holds it in the ring: its files go to the next worker or the store.
        for rel, data in files.items():
            assert reader.read(rel, 0, 1 << 20) == data
        assert members.wait_for(lambda w: set(w) == {"w2"}, LEASE_TTL_S + 10), members.workers
        for rel, data in files.items():
            assert reader.read(rel, 5, 1000) == data[5:1005]

        workers[1].stop()  # a clean stop revokes its lease: gone at once, not after the TTL
        assert members.wait_for(lambda w: not w, 5), members.workers
        assert reader.read("c0/f1.bin", 0, 100) == files["c0/f1.bin"][:100]  # the store's
    finally:
        members.close()


def test_the_block_service_wants_the_cluster_token(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ufs = tmp_path / "ufs"
    files = _dataset(ufs)
    workers.append(WorkerProcess(tmp_path, "w1", 8 << 20))
    workers[0].start(etcd.cluster_url("t2"), token_file, str(ufs), {})
    addr, query = workers[0].addr, "/v1/read?path=c1/f2.bin&offset=0&length=100"
    assert get(addr, "/v1/health").status == 200
    assert get(addr, query).status == 401
    assert get(addr, query, {"Authorization": "Bearer not-the-token"}).status == 401
    reply = get(addr, query, {"Authorization": f"Bearer {TOKEN}"})
    assert (reply.status, reply.data) == (200, files["c1/f2.bin"][:100])
    missing = get(
        addr, "/v1/read?path=nope&offset=0&length=1", {"Authorization": f"Bearer {TOKEN}"}
    )
    assert missing.status == 404
    bad = get(addr, "/v1/read?path=x&offset=-1&length=1", {"Authorization": f"Bearer {TOKEN}"})
    assert bad.status == 400
    assert TOKEN not in workers[0].output()
    assert not any(TOKEN in p.read_text(errors="replace")
                   for p in (workers[0].home / "logs").glob("*"))  # fmt: skip


def test_a_client_keeps_its_last_ring_while_etcd_is_down(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ufs = tmp_path / "ufs"
    files = _dataset(ufs)
    url = etcd.cluster_url("t3")
    workers.append(WorkerProcess(tmp_path, "w1", 8 << 20))
    workers[0].start(url, token_file, str(ufs), {})
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), str(ufs))
    try:
        assert set(members.workers) == {"w1"} and not members.degraded
        etcd.stop()
        with members.changed:  # the watch breaks: said, and the last view kept
            members.changed.wait_for(lambda: members.degraded, 10)
        assert members.degraded and set(members.workers) == {"w1"}
        reader = ClusterUnderFS(open_ufs(str(ufs), {}, None), members, TOKEN)
        for rel, data in files.items():
            assert reader.read(rel, 0, 1 << 20) == data
        assert (reader.remote_reads, reader.fallbacks) == (len(files), 0)
    finally:
        members.close()


def test_a_hung_worker_costs_a_timeout_not_an_error(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ufs = tmp_path / "ufs"
    files = _dataset(ufs)
    url = etcd.cluster_url("t4")
    for name in ("w1", "w2"):
        workers.append(WorkerProcess(tmp_path, name, 8 << 20))
        workers[-1].start(url, token_file, str(ufs), {})
    members = Members(Etcd(etcd.endpoint), parse_cluster_url(url), str(ufs))
    hung = workers[0]
    assert hung.process is not None
    try:
        assert members.wait_for(lambda w: set(w) == {"w1", "w2"}, 10), members.workers
        reader = ClusterUnderFS(open_ufs(str(ufs), {}, None), members, TOKEN)
        its = [rel for rel in files if members.ring.owner(rel) == "w1"]
        assert its
        os.kill(hung.process.pid, signal.SIGSTOP)  # it accepts connections, answers nothing
        for rel in its:  # the first waits for its answer, the others skip it
            assert reader.read(rel, 0, 1 << 20) == files[rel]
        assert (reader.remote_reads, reader.fallbacks) == (len(its), 0)  # w2 answered them
    finally:
        os.kill(hung.process.pid, signal.SIGCONT)
        members.close()

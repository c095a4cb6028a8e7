"""Writes through one cluster client seen through another at once (docs/cluster.md, "What is
consistent when"): real etcd, two `shoal worker`s, two `shoal mount --cluster` FUSE clients,
the store's sync interval left at its default (never re-list), so that only the cluster's
invalidation events can explain what the second client sees. Waits are bounded by deadlines
far above an event's path (milliseconds) and never measured."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.bench.etcdserver import EtcdServer
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import WorkerProcess, cluster_client
from tests.fuse.mounting import Mounted
from tests.ufs.stores import Store

DEADLINE_S = 30.0  # an event takes milliseconds; the sync interval is infinite


@dataclass
class Cluster:
    store: Store
    a: Mounted
    b: Mounted
    workers: list[WorkerProcess]


@pytest.fixture
def cluster(
    store: Store, etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> Iterator[Cluster]:
    url = etcd.cluster_url("writes")
    for name in ("w1", "w2"):
        workers.append(WorkerProcess(tmp_path, name, 16 << 20))
        workers[-1].start(url, token_file, store.uri, store.options)
    clients: list[Mounted] = []
    try:
        for name in ("a", "b"):
            clients.append(
                cluster_client(tmp_path, name, store.uri, store.options, url, token_file)
            )
        yield Cluster(store, clients[0], clients[1], workers)
    finally:
        for client in clients:
            client.teardown()


def _eventually(check: Callable[[], bool], what: str) -> int:
    """How many looks it took until ``check`` held (failing after DEADLINE_S)."""
    deadline, looks = time.monotonic() + DEADLINE_S, 0
    while True:
        looks += 1
        if check():
            return looks
        assert time.monotonic() < deadline, f"{what}: not seen through the other client"
        time.sleep(0.05)


def _bytes_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def test_an_overwrite_through_one_client_is_read_through_the_other(cluster: Cluster) -> None:
    old, new = os.urandom(300_000), os.urandom(300_000)  # same size: only the bytes differ
    cluster.store.put("d/a.bin", old)
    a, b = cluster.a.path, cluster.b.path
    assert (b / "d/a.bin").read_bytes() == old  # now cached by its owner and b's kernel
    assert (a / "d/a.bin").read_bytes() == old
    (a / "d/a.bin").write_bytes(new)
    seen: set[bytes | None] = set()

    def new_bytes() -> bool:
        got = _bytes_or_none(b / "d/a.bin")
        seen.add(got)
        return got == new

    _eventually(new_bytes, "the overwrite")
    assert seen <= {old, new}  # never a mix of versions, never missing
    assert cluster.store.get("d/a.bin") == new


def test_a_new_file_a_delete_and_a_rename_through_one_client_are_seen_by_the_other(
    cluster: Cluster,
) -> None:
    for name in ("keep", "gone", "moved"):
        cluster.store.put(f"d/{name}.bin", name.encode() * 1000)
    a, b = cluster.a.path, cluster.b.path
    assert sorted(os.listdir(b / "d")) == ["gone.bin", "keep.bin", "moved.bin"]
    assert (b / "d/moved.bin").read_bytes() == b"moved" * 1000
    assert sorted(os.listdir(a / "d")) == ["gone.bin", "keep.bin", "moved.bin"]

    fresh = os.urandom(150_000)
    (a / "d/new.bin").write_bytes(fresh)
    (a / "d/gone.bin").unlink()
    (a / "d/moved.bin").rename(a / "d/there.bin")

    want = ["keep.bin", "new.bin", "there.bin"]
    _eventually(lambda: sorted(os.listdir(b / "d")) == want, "the new, deleted, renamed names")
    assert (b / "d/new.bin").read_bytes() == fresh
    assert (b / "d/there.bin").read_bytes() == b"moved" * 1000
    assert not (b / "d/gone.bin").exists()
    assert not (b / "d/moved.bin").exists()


def test_a_write_survives_kill_9_of_its_client_and_is_read_through_the_other(
    cluster: Cluster,
) -> None:
    cluster.store.put("d/old.bin", b"x")
    b = cluster.b.path
    assert os.listdir(b / "d") == ["old.bin"]  # b has listed d: only an event brings more
    data = os.urandom(200_000)
    (cluster.a.path / "d/ckpt.bin").write_bytes(data)  # THROUGH: in the store at close
    cluster.a.kill9()
    assert cluster.store.get("d/ckpt.bin") == data
    _eventually(lambda: _bytes_or_none(b / "d/ckpt.bin") == data, "the killed client's write")


def test_a_worker_serves_the_version_the_client_expects_not_its_cached_one(
    cluster: Cluster,
) -> None:
    """A change made behind the cluster's back (no event): the client's sync sees it, and the
    owner, whose tiers hold the old version, must not answer with the old bytes."""
    old, new = os.urandom(250_000), os.urandom(250_000)
    cluster.store.put("v/f.bin", old)
    b = cluster.b
    assert (b.path / "v/f.bin").read_bytes() == old
    # The owner holds the old version (its blocks are stored in the background).
    _eventually(lambda: sum(w.cached_bytes() for w in cluster.workers) >= len(old), "caching")
    cluster.store.put("v/f.bin", new)
    shoal("fs", "sync", "/v", home=b.home)
    assert (b.path / "v/f.bin").read_bytes() == new

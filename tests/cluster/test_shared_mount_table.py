"""The cluster's mount table in etcd: `shoal fs mount` on one client is made on the other, and
`shoal fs unmount` likewise (real etcd, two `shoal mount --cluster` FUSE clients, local
stores). Waits are bounded by deadlines, never measured."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from cli.bench.etcdserver import EtcdServer
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.mounttable import mounts_prefix
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import cluster_client

DEADLINE_S = 30.0


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"{what}: not seen on the other node"
        time.sleep(0.05)


def _listing(path: Path) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None


def test_a_fs_mount_on_one_client_is_made_on_the_other_and_so_is_its_unmount(
    etcd: EtcdServer, token_file: Path, tmp_path: Path
) -> None:
    root, extra = tmp_path / "ufs", tmp_path / "extra-ufs"
    (root / "d").mkdir(parents=True)
    (root / "d/f.txt").write_bytes(b"root store")
    extra.mkdir()
    (extra / "x.txt").write_bytes(b"the other store")
    url = etcd.cluster_url("table")
    clients = []
    try:
        for name in ("a", "b"):
            clients.append(cluster_client(tmp_path, name, str(root), {}, url, token_file))
        a, b = clients
        assert _listing(b.path) == ["d"]

        shoal("fs", "mount", "/extra", str(extra), home=a.home)
        assert (a.path / "extra/x.txt").read_bytes() == b"the other store"
        _until(lambda: _listing(b.path / "extra") == ["x.txt"], "the mount")
        assert (b.path / "extra/x.txt").read_bytes() == b"the other store"
        mounts = shoal("fs", "mounts", "--json", home=b.home).stdout
        rows = [json.loads(line) for line in mounts.splitlines()]
        assert {row["path"]: row["uri"] for row in rows}["/extra"] == str(extra)
        _revision, kvs = Etcd(etcd.endpoint).range_prefix(mounts_prefix(parse_cluster_url(url)))
        assert [json.loads(v)["uri"] for _k, v in kvs] == [str(extra)]

        shoal("fs", "unmount", "/extra", home=a.home)
        _until(lambda: _listing(b.path / "extra") in ([], None), "the unmount")
        rows = [json.loads(line) for line in
                shoal("fs", "mounts", "--json", home=b.home).stdout.splitlines()]  # fmt: skip
        assert [row["path"] for row in rows] == ["/"]
    finally:
        for client in clients:
            client.teardown()

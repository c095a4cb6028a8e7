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
from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server, s3_client
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.mounttable import mounts_prefix
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import cluster_client
from tests.ufs.stores import new_bucket

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


def test_the_cluster_mount_table_holds_no_secret(
    etcd: EtcdServer, s3_server: S3Server, token_file: Path, tmp_path: Path
) -> None:
    """A mount of S3 given its secret key on standard input: etcd holds its URI and non-secret
    options only (each node reads the keys from its own sources)."""
    root = tmp_path / "ufs"
    root.mkdir()
    bucket = new_bucket(s3_server)
    s3_client(s3_server.endpoint).put_object(Bucket=bucket, Key="ds/o.bin", Body=b"object")
    url = etcd.cluster_url("secrets")
    clients = []
    try:
        for name in ("a", "b"):
            clients.append(cluster_client(tmp_path, name, str(root), {}, url, token_file))
        a, b = clients
        public = ["-o", f"endpoint={s3_server.endpoint}", "-o", "path_style=true",
                  "-o", "region=us-east-1", "-o", f"access_key={ACCESS_KEY}"]  # fmt: skip
        shoal("fs", "mount", "/s3", f"s3://{bucket}/ds", *public, "--secret-key-stdin",
              home=a.home, input=SECRET_KEY + "\n")  # fmt: skip
        assert (a.path / "s3/o.bin").read_bytes() == b"object"
        _revision, kvs = Etcd(etcd.endpoint).range_prefix(mounts_prefix(parse_cluster_url(url)))
        assert len(kvs) == 1
        recorded = json.loads(kvs[0][1])
        assert recorded["uri"] == f"s3://{bucket}/ds"
        assert recorded["options"]["endpoint"] == s3_server.endpoint
        assert SECRET_KEY not in kvs[0][1].decode()
        assert not {"secret_key", "access_key"} & set(recorded["options"])  # both are secrets
    finally:
        for client in clients:
            client.teardown()

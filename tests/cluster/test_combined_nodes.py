"""One process as both worker and client (`shoal mount --cluster --serve`, docs/cluster.md):
three such nodes over moto's S3 behind the logging proxy, each reading the dataset through its
own mount. A node's own files come from its own engine (never over HTTP to itself), the others'
from their owners; the store sees each object once; the others' files take no room in a node's
tiers; a clean stop leaves the ring at once, and kill -9 of one node costs the others no error."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from cli.bench.etcdserver import EtcdServer
from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import S3Server
from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import LEASE_TTL_S, Members
from engine.cluster.ring import HashRing
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import CombinedNode, s3_dataset

NODE_QUOTA = 16 << 20


def _dataset(rng: random.Random) -> dict[str, bytes]:
    files = {
        f"train/c{c:02d}/img{i:03d}.jpg": rng.randbytes(rng.randint(30_000, 90_000))
        for c in range(10)
        for i in range(12)
    }
    files["val/shard.tar"] = rng.randbytes((3 << 20) // 2 + rng.randint(0, 1 << 20))
    return files


def _s3_store(s3_server: S3Server, proxy: FaultProxy, tmp_path: Path,
              files: dict[str, bytes], tag: str) -> tuple[str, dict[str, str], str]:  # fmt: skip
    """The dataset in a bucket of its own; (uri, options through the proxy, bucket)."""
    bucket = f"{tag}-{os.getpid()}-{random.randrange(1 << 30):x}"
    options = s3_dataset(s3_server, proxy, tmp_path, bucket, files)
    return f"s3://{bucket}/ds", options, bucket


def _start_three(combined: list[CombinedNode], tmp_path: Path, url: str, token: Path,
                 uri: str, options: dict[str, str]) -> Members:  # fmt: skip
    for name in ("n1", "n2", "n3"):
        combined.append(CombinedNode(tmp_path, name, NODE_QUOTA))
        combined[-1].start(url, token, uri, options)
    members = Members(Etcd(parse_cluster_url(url).endpoint), parse_cluster_url(url), uri)
    assert set(members.workers) == {"n1", "n2", "n3"}
    assert {w.addr for w in members.workers.values()} == {n.addr for n in combined}
    return members


def _read(root: Path, names: list[str], files: dict[str, bytes], errors: list[str]) -> None:
    for name in names:
        try:
            if (root / name).read_bytes() != files[name]:
                errors.append(f"{root}/{name}: wrong bytes")
        except OSError as exc:
            errors.append(f"{root}/{name}: {exc}")


def _run(jobs: list[tuple[Path, list[str]]], files: dict[str, bytes]) -> list[str]:
    errors: list[str] = []
    threads = [threading.Thread(target=_read, args=(root, names, files, errors))
               for root, names in jobs]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_three_combined_nodes_read_own_files_locally_and_fetch_each_object_once(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    combined: list[CombinedNode],
    tmp_path: Path,
) -> None:
    files = _dataset(random.Random(1919))
    total = sum(len(d) for d in files.values())
    uri, options, bucket = _s3_store(s3_server, proxy, tmp_path, files, "both")
    url = etcd.cluster_url("both")
    members = _start_three(combined, tmp_path, url, token_file, uri, options)
    members.close()
    ring = HashRing(n.name for n in combined)
    own = {n.name: [f for f in sorted(files) if ring.owner(f) == n.name] for n in combined}
    assert all(own.values()), own
    proxy.clear()  # the listing and mounting are not what is counted

    # Each node its own files: from its own engine, none asked of its block service.
    errors = _run([(n.mnt, own[n.name]) for n in combined], files)
    assert not errors, errors[:5]
    assert [n.answered() for n in combined] == [0, 0, 0]

    # Then every node the whole dataset, at once: the others' files from their owners.
    jobs = []
    for i, node in enumerate(combined):
        names = sorted(files)
        random.Random(i).shuffle(names)
        jobs.append((node.mnt, names))
    errors = _run(jobs, files)
    assert not errors, errors[:5]
    assert all(n.answered() > 0 for n in combined)

    gets = Counter(
        urlsplit(path).path.removeprefix(f"/{bucket}/ds/")
        for method, path in proxy.requests
        if method == "GET" and urlsplit(path).path.startswith(f"/{bucket}/ds/")
    )
    assert set(gets) == set(files), sorted(set(files) - set(gets))[:5]
    twice = {name: n for name, n in gets.items() if n != 1}
    assert not twice, f"objects fetched more than once: {twice}"
    # Each holds its own files, not the others' it read: together the dataset, none alone.
    held = [n.cached_bytes() for n in combined]
    owned = [sum(len(files[f]) for f in own[n.name]) for n in combined]
    assert sum(held) >= total
    assert all(h < o + total // 10 for h, o in zip(held, owned, strict=True)), (held, owned)

    # A clean stop revokes the lease: gone from the ring when `shoal umount` returns.
    shoal("umount", str(combined[0].mnt))
    after = Members(Etcd(etcd.endpoint), parse_cluster_url(url), uri)
    after.close()
    assert set(after.workers) == {"n2", "n3"}


def test_others_keep_reading_when_a_combined_node_is_killed(
    etcd: EtcdServer,
    s3_server: S3Server,
    proxy: FaultProxy,
    token_file: Path,
    combined: list[CombinedNode],
    tmp_path: Path,
) -> None:
    files = _dataset(random.Random(1920))
    uri, options, _bucket = _s3_store(s3_server, proxy, tmp_path, files, "bothkill")
    url = etcd.cluster_url("bothkill")
    members = _start_three(combined, tmp_path, url, token_file, uri, options)
    try:
        victim = combined[2]
        # The victim's files first: what the others read of it just after the kill is its.
        ring = HashRing(n.name for n in combined)
        names = sorted(files, key=lambda f: ring.owner(f) != victim.name)
        errors: list[str] = []
        done = threading.Event()

        def epoch(node: CombinedNode) -> None:
            half = len(names) // 2
            _read(node.mnt, names[:half], files, errors)
            done.wait(60)  # the kill happens between the halves
            _read(node.mnt, names[half:], files, errors)
            _read(node.mnt, names, files, errors)  # again: the page cache may hold some

        readers = [threading.Thread(target=epoch, args=(n,)) for n in combined[:2]]
        for t in readers:
            t.start()
        assert victim.mount is not None
        victim.mount.kill9()
        done.set()
        for t in readers:
            t.join()
        assert not errors, errors[:5]
        # Its lease expires: the ring is the two others.
        gone = members.wait_for(lambda ws: set(ws) == {"n1", "n2"}, 4 * LEASE_TTL_S)
        assert gone, sorted(members.workers)
        errors = _run([(n.mnt, names) for n in combined[:2]], files)
        assert not errors, errors[:5]
    finally:
        members.close()

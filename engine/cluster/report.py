"""`shoal report --cluster`: the cluster as etcd and its workers tell it (docs/cluster.md).

The workers registered in etcd (a key there means its lease is alive), each one's share of the
ring of its store (engine/cluster/ring.py: the fraction of the hash circle it owns, so the
fraction of files it should hold), its health (``/v1/health`` answered within ``timeout``) and
its capacity and use (``/v1/status``, with the cluster's token). etcd out of reach: the report
says so (a client's view would be degraded: serving its last ring) and lists no workers.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3

from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import Worker, decode, store_key, workers_prefix
from engine.cluster.remote import ClusterUnderFS
from engine.cluster.ring import HashRing
from engine.errors import Unavailable
from engine.mounts import MountTable

TIMEOUT_S = 2.0  # a worker that has not answered by then is shown unhealthy


def _ask(http: urllib3.PoolManager, worker: Worker, token: str) -> dict[str, Any]:
    out: dict[str, Any] = {"healthy": False, "status": None, "error": None}
    try:
        health = http.request("GET", f"http://{worker.addr}/v1/health")
        out["healthy"] = health.status == 200
        got = http.request(
            "GET", f"http://{worker.addr}/v1/status", headers={"Authorization": f"Bearer {token}"}
        )
    except urllib3.exceptions.HTTPError as exc:
        out["error"] = f"no answer: {type(exc).__name__}"
        return out
    if got.status != 200:
        out["error"] = f"/v1/status answered {got.status}" + (
            " (the cluster's token was refused)" if got.status == 401 else ""
        )
        return out
    try:
        out["status"] = json.loads(got.data)
    except ValueError:
        out["error"] = "/v1/status answered no JSON"
    return out


def _shares(workers: list[Worker]) -> dict[str, float]:
    """Each worker's share of the ring of its own store (clients of a store use only its
    workers), so each store's shares sum to 1."""
    by_store: dict[str, list[str]] = {}
    for w in workers:
        by_store.setdefault(store_key(w.uri), []).append(w.id)
    shares: dict[str, float] = {}
    for ids in by_store.values():
        shares.update(HashRing(ids).shares())
    return shares


def cluster_report(url: str, token: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    address = parse_cluster_url(url)
    report: dict[str, Any] = {"cluster": address.name, "etcd": address.endpoint}
    prefix = workers_prefix(address)
    try:
        _revision, kvs = Etcd(address.endpoint).range_prefix(prefix)
    except Unavailable as exc:
        return {**report, "degraded": True, "error": str(exc), "workers": []}
    found = (decode(prefix, k, v) for k, v in kvs)
    workers = sorted((w for w in found if w is not None), key=lambda w: w.id)
    shares = _shares(workers)
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=timeout))
    with ThreadPoolExecutor(max(1, min(16, len(workers)))) as pool:
        answers = list(pool.map(lambda w: _ask(http, w, token), workers))
    report["degraded"] = False
    report["workers"] = [
        {"id": w.id, "addr": w.addr, "store": w.uri, "lease_alive": True,
         "ring_share": shares.get(w.id, 0.0), **answer}
        for w, answer in zip(workers, answers, strict=True)
    ]  # fmt: skip
    return report


def client_view(mounts: MountTable) -> dict[str, Any] | None:
    """A cluster client's own view (`shoal report` through its mount): the workers it reads
    from, whether it is degraded (etcd out of reach: its last ring served), and how many reads
    the workers answered or left to the store. None for a home that is no cluster client, or
    whose daemon has not opened its store yet (every read so far served by its own cache)."""
    for _path, mount in mounts.listing():
        ufs: object = mounts.opened(mount)
        while ufs is not None and not isinstance(ufs, ClusterUnderFS):
            ufs = getattr(ufs, "inner", None)  # below the metrics wrapper, if any
        if isinstance(ufs, ClusterUnderFS):
            return {
                "workers": sorted(ufs.members.workers),
                "degraded": ufs.members.degraded,
                "remote_reads": ufs.remote_reads,
                "short_circuit_reads": ufs.short_reads,  # of those, from their tier files
                "fallbacks": ufs.fallbacks,
            }
    return None

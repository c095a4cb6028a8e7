"""`shoal fs load --cluster`: each file loaded by the worker that owns it (docs/cluster.md).

The workers are read from etcd once, and each file's owner found on the ring of its store as
a client finds it (engine/cluster/ring.py, by the file's path in the store), so that the
owner's cache is where clients will ask; the owner reads the file through its engine
(``POST /v1/load``), fetching each block from the store once.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import urllib3

from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import Worker, decode, store_key, workers_prefix
from engine.cluster.ring import HashRing
from engine.errors import InvalidArgument, Unavailable

CONNECT_TIMEOUT_S = 2.0
LOAD_TIMEOUT_S = 600.0  # one file, all its misses fetched from the store by the worker


class ClusterLoader:
    def __init__(self, url: str, token: str) -> None:
        """The cluster's workers now (Unavailable if etcd does not answer)."""
        address = parse_cluster_url(url)
        self.name = address.name
        prefix = workers_prefix(address)
        _revision, kvs = Etcd(address.endpoint).range_prefix(prefix)
        self.stores: dict[str, dict[str, Worker]] = {}
        for key, value in kvs:
            worker = decode(prefix, key, value)
            if worker is not None:
                self.stores.setdefault(store_key(worker.uri), {})[worker.id] = worker
        self.rings = {store: HashRing(ws) for store, ws in self.stores.items()}
        self._auth = {"Authorization": f"Bearer {token}"}
        timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=LOAD_TIMEOUT_S)
        self.http = urllib3.PoolManager(retries=False, timeout=timeout, maxsize=64)

    def owner(self, uri: str, rel: str) -> Worker:
        """The worker a client reads ``rel`` (a path in the store ``uri``) from."""
        store = store_key(uri)
        ring = self.rings.get(store)
        wid = ring.owner(rel) if ring is not None else None
        if wid is None:
            raise InvalidArgument(f"no worker of cluster {self.name} serves {uri}")
        return self.stores[store][wid]

    def load(self, worker: Worker, rel: str) -> int:
        """Has ``worker`` load ``rel`` into its cache; the bytes it holds of it."""
        try:
            reply = self.http.request(
                "POST", f"http://{worker.addr}/v1/load?{urlencode({'path': rel})}",
                headers=self._auth,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"worker {worker.id} at {worker.addr} did not answer: {exc}") from exc
        if reply.status != 200:
            said = reply.data.decode(errors="replace").strip()
            raise Unavailable(f"worker {worker.id} could not load {rel}: {reply.status} {said}")
        return int(json.loads(reply.data)["bytes"])

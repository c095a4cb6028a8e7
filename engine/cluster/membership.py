"""Who is in the cluster: workers registered in etcd under leases, and clients' view of them.

A worker puts ``/shoal/CLUSTER/workers/ID`` (its address and the UFS it serves, JSON) under a
lease of ``ttl`` seconds that a thread keeps alive: a worker that dies (kill -9, a lost node)
stops renewing it, and etcd deletes the key when it expires. A clean stop revokes the lease:
the key goes at once. A client reads the workers once, then follows a watch on the prefix;
while etcd cannot be reached it keeps the last view and says it is degraded.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from engine.cluster.etcd import ClusterAddress, Etcd
from engine.cluster.ring import HashRing
from engine.errors import Unavailable

log = logging.getLogger(__name__)

LEASE_TTL_S = 5  # how long a dead worker stays in the ring
RETRY_S = 1.0  # between attempts to reach etcd again


@dataclass(frozen=True)
class Worker:
    id: str
    addr: str  # HOST:PORT of its block service
    uri: str  # the UFS it serves: clients of another UFS do not use it

    def encode(self) -> bytes:
        return json.dumps({"addr": self.addr, "uri": self.uri}).encode()


def store_key(uri: str) -> str:
    """How workers and clients compare the store they serve: ``/data`` and ``file:///data/``
    are one store (an S3 URI is compared as written, without a final ``/``)."""
    if uri.startswith("file://"):
        uri = unquote(urlsplit(uri).path)
    return uri.rstrip("/") or "/"


def workers_prefix(cluster: ClusterAddress) -> bytes:
    return cluster.prefix + b"workers/"


def decode(prefix: bytes, key: bytes, value: bytes) -> Worker | None:
    try:
        fields = json.loads(value)
        return Worker(key[len(prefix) :].decode(), str(fields["addr"]), str(fields["uri"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        log.warning("ignoring a malformed worker registration under %r", key)
        return None


class Registration:
    """A worker's key in etcd, kept alive until ``close``."""

    def __init__(self, etcd: Etcd, cluster: ClusterAddress, worker: Worker,
                 ttl: int = LEASE_TTL_S) -> None:  # fmt: skip
        self.etcd, self.worker, self.ttl = etcd, worker, ttl
        self.key = workers_prefix(cluster) + worker.id.encode()
        self._stop = threading.Event()
        self.lease = self._register()  # a worker that cannot register does not start
        self._thread = threading.Thread(target=self._keep, name="etcd-keepalive", daemon=True)
        self._thread.start()

    def _register(self) -> int:
        lease = self.etcd.grant(self.ttl)
        self.etcd.put(self.key, self.worker.encode(), lease)
        return lease

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if self.etcd.keepalive(self.lease) <= 0:
                    # Expired while etcd was out of reach: the key is gone, so register again.
                    log.warning("the worker's lease expired; registering again")
                    self.lease = self._register()
            except Unavailable as exc:
                log.warning("keeping the worker's lease alive failed: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.etcd.revoke(self.lease)  # a clean stop leaves the ring at once
        except Unavailable as exc:
            log.warning("revoking the worker's lease failed (it expires by itself): %s", exc)


class Members:
    """A client's view of the live workers of one UFS, and the ring over them."""

    def __init__(self, etcd: Etcd, cluster: ClusterAddress, uri: str) -> None:
        self.etcd, self.uri = etcd, store_key(uri)
        self.prefix = workers_prefix(cluster)
        self.degraded = False  # etcd out of reach: the last view is served
        self.workers: dict[str, Worker] = {}
        self.ring = HashRing(())
        self.changed = threading.Condition()
        self._stop = threading.Event()
        revision = self._reload()  # a client that cannot reach etcd at start does not start
        self._thread = threading.Thread(
            target=self._follow, args=(revision,), name="etcd-watch", daemon=True
        )
        self._thread.start()

    def _reload(self) -> int:
        revision, kvs = self.etcd.range_prefix(self.prefix)
        found = {}
        for key, value in kvs:
            worker = decode(self.prefix, key, value)
            if worker is not None and store_key(worker.uri) == self.uri:
                found[worker.id] = worker
        with self.changed:
            if found != self.workers:
                log.info("cluster workers: %s", ", ".join(sorted(found)) or "none")
            self.workers, self.ring = found, HashRing(found)
            self.degraded = False
            self.changed.notify_all()
        return revision

    def _follow(self, revision: int) -> None:
        follow(self.etcd, self.prefix, revision, self._reload, self._stop, self._degrade)

    def _degrade(self, exc: Unavailable) -> None:
        if not self.degraded:
            log.warning("cluster degraded (serving the last ring): %s", exc)
        with self.changed:
            self.degraded = True
            self.changed.notify_all()

    def addresses(self, path: str, count: int = 3) -> list[str]:
        """The block services to ask for ``path``'s bytes, its owner first."""
        workers = self.workers
        return [workers[w].addr for w in self.ring.owners(path, count) if w in workers]

    def wait_for(self, check: Callable[[dict[str, Worker]], bool], timeout: float) -> bool:
        """Waits until ``check`` holds of the workers (tests, and a client's start)."""
        with self.changed:
            return self.changed.wait_for(lambda: check(self.workers), timeout)

    def close(self) -> None:
        self._stop.set()  # the watch thread is a daemon: a blocked watch ends with the process


def follow(
    etcd: Etcd,
    prefix: bytes,
    revision: int,
    reload: Callable[[], int],
    stop: threading.Event,
    lost: Callable[[Unavailable], None],
) -> None:
    """Follows ``prefix`` with a watch until ``stop``, calling ``reload`` (which re-reads the
    prefix whole and returns its revision) on each change; when etcd is unreachable, tells
    ``lost`` and tries again every RETRY_S. The membership's and the mount table's thread."""
    while not stop.is_set():
        try:
            for _events in etcd.watch_prefix(prefix, revision + 1):
                # Re-read whole: a few keys, and no event can be misapplied.
                revision = reload()
                if stop.is_set():
                    return
        except Unavailable as exc:
            lost(exc)
        if stop.wait(RETRY_S):
            return
        try:
            revision = reload()
        except Unavailable:
            continue

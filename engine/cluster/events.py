"""Per-path invalidation events in etcd: a change one client made in the store, told to every
other node of the cluster at once rather than at its next metadata sync (docs/cluster.md).

A client whose write, delete, rename... reached the store puts one key
``/shoal/CLUSTER/events/ORIGIN/N`` whose value names the store and the paths, under a lease of
``EVENT_TTL_S`` (events are news, not state: etcd forgets them by itself). Every other node
follows a watch on the events' prefix from the revision it started at and hands the paths of
its store's events, but its own, to a callback (engine/cluster/refresh.py). A watch that
breaks resumes from the last revision it saw: nothing is missed unless etcd compacted it, and
then the node's sync interval is what is left (the follower says so in its log).
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.cluster.etcd import ClusterAddress, Etcd
from engine.cluster.membership import RETRY_S, store_key
from engine.errors import Unavailable

log = logging.getLogger(__name__)

EVENT_TTL_S = 60  # how long etcd keeps an event: long enough for a watch that reconnects
OnPaths = Callable[[list[str]], None]


def events_prefix(cluster: ClusterAddress) -> bytes:
    return cluster.prefix + b"events/"


class Events:
    """One node's side of the events of one store: what it publishes, what it follows."""

    def __init__(self, etcd: Etcd, cluster: ClusterAddress, uri: str, origin: str) -> None:
        self.etcd, self.uri, self.origin = etcd, store_key(uri), origin
        self.prefix = events_prefix(cluster)
        self._counter = itertools.count(1)
        self._lease = (0, 0.0)  # (id, when granted): one lease for many events
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = self.received = 0
        self.degraded = False

    # -- publishing --------------------------------------------------------------------------

    def _lease_id(self, renew: bool) -> int:
        lease, granted = self._lease
        if renew or not lease or time.monotonic() - granted > EVENT_TTL_S / 2:
            lease = self.etcd.grant(EVENT_TTL_S)
            self._lease = (lease, time.monotonic())
        return lease

    def publish(self, paths: Sequence[str]) -> None:
        """Tells the other nodes that ``paths`` (relative to the store's root) changed in the
        store. Called after the store's call returned, in the thread that made it. etcd out of
        reach costs the others their freshness (their sync interval bounds it), not the write:
        it is logged, never raised."""
        key = self.prefix + f"{self.origin}/{next(self._counter):016d}".encode()
        value = json.dumps({"uri": self.uri, "origin": self.origin, "paths": list(paths)})
        with self._lock:
            for renew in (False, True):  # a lease etcd forgot (it restarted) granted again
                try:
                    self.etcd.put(key, value.encode(), self._lease_id(renew))
                    self.published += 1
                    return
                except Unavailable as exc:
                    failure = exc
        log.warning("could not tell the cluster that %s changed: %s", ", ".join(paths), failure)

    # -- following ---------------------------------------------------------------------------

    def follow(self, on_paths: OnPaths) -> None:
        """Hands the paths of other nodes' events to ``on_paths`` from now on, in a thread;
        fails with Unavailable if etcd cannot be reached now."""
        revision, _kvs = self.etcd.range_prefix(self.prefix + b"\0")  # just the revision
        self._thread = threading.Thread(
            target=self._follow, args=(revision, on_paths), name="etcd-events", daemon=True
        )
        self._thread.start()

    def _paths(self, event: dict[str, Any]) -> list[str]:
        if event.get("type", "PUT") != "PUT":
            return []  # an expired event going: no news
        try:
            fields = json.loads(base64.b64decode(event["kv"].get("value", "")))
            if fields["origin"] == self.origin or store_key(fields["uri"]) != self.uri:
                return []
            return [str(p) for p in fields["paths"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a malformed cluster event: %r", event)
            return []

    def _follow(self, revision: int, on_paths: OnPaths) -> None:
        while not self._stop.is_set():
            try:
                for events in self.etcd.watch_prefix(self.prefix, revision + 1):
                    for event in events:
                        revision = max(revision, int(event["kv"].get("mod_revision", 0)))
                        paths = self._paths(event)
                        if paths:
                            self.received += 1
                            self._deliver(on_paths, paths)
                    self.degraded = False
            except Unavailable as exc:
                if not self.degraded:
                    log.warning("cluster events degraded (until the watch resumes): %s", exc)
                self.degraded = True
                if "canceled" in str(exc):  # compacted past our revision: resume from now on
                    revision = self._current(revision)
            if self._stop.wait(RETRY_S):
                return

    def _current(self, revision: int) -> int:
        try:
            log.warning("cluster events since revision %d are lost: syncs will find them", revision)
            return self.etcd.range_prefix(self.prefix + b"\0")[0]
        except Unavailable:
            return revision

    @staticmethod
    def _deliver(on_paths: OnPaths, paths: list[str]) -> None:
        try:
            on_paths(paths)
        except Exception:  # one bad event must not end the follower
            log.exception("applying the cluster's event for %s failed", paths)

    def close(self) -> None:
        self._stop.set()  # the thread is a daemon: a blocked watch ends with the process

"""The cluster's mount table in etcd: a `shoal fs mount` (or unmount) on one node is made on
every node that follows the table (docs/cluster.md).

Each mount is one key, ``/shoal/CLUSTER/mounts/PATH``, whose value is the JSON of its store's
URI, its options and whether it is read-only: the options a journal's AddMount holds, which
never hold a secret. Each node reads a mount's secrets from its own sources (the environment,
a profile, a ``*_file`` of its own), as a single node does.

A node publishes its own mounts and unmounts as its gate commits them (an observer queues
them, a thread puts them: no I/O under the namespace's lock); it follows the table with a
watch and makes its mount table agree: a mount the table has and the node lacks is made, one
the table had and lost is undone. Mounts the node made alone (never in the table), and its
root, are its own: left alone.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from engine.cluster.etcd import ClusterAddress, Etcd
from engine.cluster.membership import follow
from engine.errors import NotFound, ShoalError, Unavailable
from engine.filesystem import FileSystem
from journal import entries as E

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True)
class SharedMount:
    uri: str
    options: dict[str, str]
    readonly: bool

    def encode(self) -> bytes:
        fields = {"uri": self.uri, "options": self.options, "readonly": self.readonly}
        return json.dumps(fields, sort_keys=True).encode()


def mounts_prefix(cluster: ClusterAddress) -> bytes:
    return cluster.prefix + b"mounts/"


class SharedMountTable:
    def __init__(self, etcd: Etcd, cluster: ClusterAddress, fs: FileSystem) -> None:
        self.etcd, self.fs = etcd, fs
        self.prefix = mounts_prefix(cluster)
        self.known: dict[str, SharedMount] = {}  # the table as last read
        self._local = threading.local()  # set while this node applies the table's mounts
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.applied = 0

    def start(self) -> None:
        """Publishes this node's mounts from now on and follows the table (made now: fails
        with Unavailable if etcd cannot be reached)."""
        revision = self._reload()
        self.fs.ns.gate.observers.append(self.observe)
        for target, name in ((self._publish, "etcd-mounts-put"), (self._follow, "etcd-mounts")):
            args = () if target == self._publish else (revision,)
            threading.Thread(target=target, args=args, name=name, daemon=True).start()

    # -- publishing --------------------------------------------------------------------------

    def observe(self, entry: Any) -> None:
        """A gate observer (under the namespace's lock: it only queues)."""
        if getattr(self._local, "applying", False):
            return  # the table's own mount, made here: already in it
        if isinstance(entry, E.AddMount | E.RemoveMount):
            node = self.fs.ns.tree.find(entry.id)
            if node is None:
                return
            path = self.fs.ns.tree.path_of(node)
            if path == "/":
                return  # each node's root is its own
            if isinstance(entry, E.AddMount):
                spec = SharedMount(entry.uri, dict(entry.options), entry.readonly)
                self._queue.put((path, spec))
            else:
                self._queue.put((path, None))

    def _publish(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            path, spec = item
            key = self.prefix + path.encode("utf-8", "surrogateescape")
            try:
                if spec is None:
                    self.etcd.delete(key)
                else:
                    self.etcd.put(key, spec.encode())
            except Unavailable as exc:
                log.warning("could not record the mount at %s in the cluster: %s", path, exc)

    # -- following ---------------------------------------------------------------------------

    def _reload(self) -> int:
        revision, kvs = self.etcd.range_prefix(self.prefix)
        table = {}
        for key, value in kvs:
            path = key[len(self.prefix) :].decode("utf-8", "surrogateescape")
            try:
                fields = json.loads(value)
                table[path] = SharedMount(
                    str(fields["uri"]), {str(k): str(v) for k, v in fields["options"].items()},
                    bool(fields["readonly"]),
                )  # fmt: skip
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("ignoring a malformed cluster mount under %r", key)
        self._local.applying = True
        try:
            self._agree(table)
        finally:
            self._local.applying = False
        return revision

    def _agree(self, table: dict[str, SharedMount]) -> None:
        mounts = self.fs.mounts
        here = {path: m for path, m in mounts.listing()}
        for path, spec in sorted(table.items()):
            if path not in here:
                self._mount(path, spec)
        for path, spec in sorted(self.known.items(), reverse=True):  # the deepest first
            mine = here.get(path)
            if path not in table and mine is not None and mine.uri == spec.uri:
                try:
                    mounts.unmount(path)
                    self.applied += 1
                except ShoalError as exc:
                    log.warning("the cluster unmounted %s; here it failed: %s", path, exc)
        self.known = table

    def _mount(self, path: str, spec: SharedMount) -> None:
        try:
            try:
                self.fs.sync.lookup(path, 0.0)
            except NotFound:
                self.fs.makedirs(path)
            self.fs.mounts.mount(path, spec.uri, spec.options, spec.readonly)
            self.applied += 1
            log.info("mounted %s at %s, as the cluster's mount table says", spec.uri, path)
        except ShoalError as exc:
            log.warning("the cluster mounts %s at %s; here it failed: %s", spec.uri, path, exc)

    def _follow(self, revision: int) -> None:
        follow(self.etcd, self.prefix, revision, self._reload, self._stop, _degraded)

    def close(self) -> None:
        self._stop.set()
        self._queue.put(_STOP)


def _degraded(exc: Unavailable) -> None:
    log.warning("cluster mount table degraded (the last one kept): %s", exc)

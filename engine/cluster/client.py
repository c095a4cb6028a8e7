"""A FUSE client's side of the cluster: the members it follows, and the connector wrapper that
sends its reads of the cluster's store to the workers (engine/cluster/remote.py)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping

from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.events import Events
from engine.cluster.membership import Members, store_key
from engine.cluster.mounttable import SharedMountTable
from engine.cluster.refresh import PathRefresher, expected_fingerprint
from engine.cluster.remote import ClusterUnderFS
from engine.filesystem import FileSystem
from engine.mounts import Opener
from engine.placement import Placement
from engine.state import Mount
from ufs.base import UnderFS


class ClusterClient:
    def __init__(self, url: str, uri: str, token: str) -> None:
        """Follows the workers of ``url`` (etcd://HOST:PORT/CLUSTER) that serve ``uri``; fails
        with Unavailable if etcd cannot be reached now (once started, it keeps the last ring)."""
        self.address = parse_cluster_url(url)
        self.uri = store_key(uri)
        self.token = token
        self.etcd = etcd = Etcd(self.address.endpoint)
        self.members = Members(etcd, self.address, self.uri)
        origin = f"client-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.events = Events(etcd, self.address, self.uri, origin)
        self.wrapped: list[ClusterUnderFS] = []
        self.fs: FileSystem | None = None
        self.root = "/"
        self.refresher: PathRefresher | None = None
        self.mount_table: SharedMountTable | None = None
        self.short_circuit = True
        self.local: str | None = None  # its own block service's address, if it serves too

    def attach(self, fs: FileSystem, root: str = "/", short_circuit: bool = True) -> None:
        """Once the engine is open, its store mounted at ``root``: its reads carry the version
        its namespace holds, its changes are told to the cluster, and the others' changes
        synced into it as they come (engine/cluster/events.py)."""
        self.fs, self.root = fs, root
        self.short_circuit = short_circuit  # cluster.short_circuit
        for wrapped in self.wrapped:
            self._hook(wrapped)
        self.refresher = PathRefresher(fs, root)
        self.events.follow(self.refresher)
        # `shoal fs mount` on any node of the cluster, made here too; ours made there.
        self.mount_table = SharedMountTable(self.etcd, self.address, fs)
        self.mount_table.start()

    def _hook(self, wrapped: ClusterUnderFS) -> None:
        fs, root = self.fs, self.root
        if fs is not None:
            wrapped.expect = lambda rel: expected_fingerprint(fs, root, rel)
        wrapped.publish = self.events.publish
        wrapped.short_circuit = self.short_circuit
        wrapped.local = self.local

    def serve_as(self, addr: str, placement: Placement) -> None:
        """This node is a worker of the cluster too, reached at ``addr``: the files the ring
        gives it are read by its own engine from the store (cached under its quota, served to
        the others by its block service); the others' files come from their owners and are
        not cached here, so they never take the room of its own (docs/cluster.md)."""
        self.local = addr
        for wrapped in self.wrapped:
            wrapped.local = addr

        def uncached(mount: Mount, rel: str) -> bool:
            connector = next((w for w in self.wrapped if store_key(w.uri) == store_key(mount.uri)),
                             None)  # fmt: skip
            return connector is not None and not connector.owns(rel)

        placement.uncached = uncached

    def opener(self, inner: Opener) -> Opener:
        """``inner`` (how the mount table opens a store), with the cluster's store wrapped:
        another store mounted below it is read directly."""

        def open_(uri: str, options: Mapping[str, str], hidden: Mapping[str, str] | None
                  ) -> UnderFS:  # fmt: skip
            ufs = inner(uri, options, hidden)
            if store_key(uri) != self.uri:
                return ufs
            wrapped = ClusterUnderFS(ufs, self.members, self.token)
            self._hook(wrapped)
            self.wrapped.append(wrapped)
            return wrapped

        return open_

    def close(self) -> None:
        if self.mount_table is not None:
            self.mount_table.close()
        self.events.close()
        self.members.close()

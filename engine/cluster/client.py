"""A FUSE client's side of the cluster: the members it follows, and the connector wrapper that
sends its reads of the cluster's store to the workers (engine/cluster/remote.py)."""

from __future__ import annotations

from collections.abc import Mapping

from engine.cluster.etcd import Etcd, parse_cluster_url
from engine.cluster.membership import Members, store_key
from engine.cluster.remote import ClusterUnderFS
from engine.mounts import Opener
from ufs.base import UnderFS


class ClusterClient:
    def __init__(self, url: str, uri: str, token: str) -> None:
        """Follows the workers of ``url`` (etcd://HOST:PORT/CLUSTER) that serve ``uri``; fails
        with Unavailable if etcd cannot be reached now (once started, it keeps the last ring)."""
        self.address = parse_cluster_url(url)
        self.uri = store_key(uri)
        self.token = token
        self.members = Members(Etcd(self.address.endpoint), self.address, self.uri)
        self.wrapped: list[ClusterUnderFS] = []

    def opener(self, inner: Opener) -> Opener:
        """``inner`` (how the mount table opens a store), with the cluster's store wrapped:
        another store mounted below it is read directly."""

        def open_(uri: str, options: Mapping[str, str], hidden: Mapping[str, str] | None
                  ) -> UnderFS:  # fmt: skip
            ufs = inner(uri, options, hidden)
            if store_key(uri) != self.uri:
                return ufs
            wrapped = ClusterUnderFS(ufs, self.members, self.token)
            self.wrapped.append(wrapped)
            return wrapped

        return open_

    def close(self) -> None:
        self.members.close()

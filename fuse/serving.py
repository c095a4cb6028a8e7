"""A node's worker role (docs/cluster.md): its block service (fuse/blockserver.py) and its
registration in etcd under a lease. `shoal worker` runs it alone (fuse/worker.py); `shoal mount
--cluster --serve` runs it beside the FUSE client in the same daemon, over the same engine
(fuse/daemon.py), so that one process is both a worker and a client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from engine.cluster.client import ClusterClient
from engine.cluster.etcd import ClusterAddress, Etcd, parse_cluster_url
from engine.cluster.membership import Registration, Worker, store_key
from engine.engine import Engine
from engine.errors import InvalidArgument
from fuse.blockserver import BlockServer

# Directory prefetch reads a directory's other files after a miss: on a worker those are mostly
# other workers' files, fetched from the store a second time. Off on workers, and on a node that
# is both (its prefetch would fetch others' files through them).
WORKER_OVERRIDES = {"cache.prefetch_threads": "0"}


def host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"{what} {text!r}: write it HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ServeOptions:
    """Where the worker role listens, where clients reach it, and its id in the cluster."""

    listen: str
    advertise: str | None = None
    worker_id: str | None = None
    what: str = "--listen"  # the option that gave ``listen``, for its error


class WorkerService:
    """The block service, listening from construction; ``register`` puts the node in the ring
    (after whatever must run before clients may ask it), ``close`` revokes the lease first, so
    clients stop asking, then stops the service."""

    def __init__(
        self, engine: Engine, token: str, cluster: ClusterAddress, uri: str, options: ServeOptions
    ) -> None:
        self.cluster = cluster
        host, port = host_port(options.listen, options.what)
        self.uri = uri
        self.server = BlockServer(engine, token, host, port).start()
        self.addr = options.advertise or f"{host}:{self.server.port}"
        self.id = options.worker_id or self.addr
        self.etcd = Etcd(self.cluster.endpoint)
        self.registration: Registration | None = None

    def register(self) -> None:
        worker = Worker(self.id, self.addr, store_key(self.uri))
        self.registration = Registration(self.etcd, self.cluster, worker)

    def close(self) -> None:
        try:
            if self.registration is not None:
                self.registration.close()
        finally:
            self.server.close()


@contextlib.contextmanager
def serving(
    engine: Engine, token: str, cluster_url: str, uri: str, options: ServeOptions
) -> Iterator[WorkerService]:
    service = WorkerService(engine, token, parse_cluster_url(cluster_url), uri, options)
    try:
        yield service
    finally:
        service.close()


def start_role(
    engine: Engine, cluster: ClusterClient | None, uri: str, options: ServeOptions | None
) -> WorkerService | None:
    """A mount's daemon as a worker too (``--serve``): its block service over the daemon's own
    engine, the client told which files are its own, then registered. None without ``--serve``."""
    if options is None:
        return None
    if cluster is None:
        raise InvalidArgument("--serve makes a mount a worker of a cluster: give --cluster too")
    service = WorkerService(engine, cluster.token, cluster.address, uri, options)
    try:
        cluster.serve_as(service.addr, engine.fs.placement)
        service.register()
    except BaseException:
        service.close()
        raise
    return service

"""`shoal worker`: a cluster's cache node (docs/cluster.md). The engine with its tiers and
journal over one store, as a mount's daemon has it, but served to other nodes through the block
service (fuse/blockserver.py) instead of the kernel, and registered in etcd under a lease so
that clients place files on it (engine/cluster/)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from engine import metrics
from engine.cluster.events import Events
from engine.cluster.refresh import PathRefresher
from engine.credentials import split_secrets, take_environment_secrets
from engine.engine import Engine
from fuse.daemon import attach_root, setup_logging
from fuse.proctitle import set_title
from fuse.serving import WORKER_OVERRIDES, ServeOptions, host_port, serving

__all__ = ["WORKER_OVERRIDES", "host_port", "run"]  # host_port: deploy/'s checker uses it

log = logging.getLogger(__name__)


def _stop_on_signals() -> threading.Event:
    """Set at SIGTERM or SIGINT (a service manager's stop, or ^C). Installed before the worker
    says it is ready: a stop asked for right after readiness must still revoke the lease and
    close the engine, not kill the process."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run(
    home: str,
    uri: str,
    *,
    cluster_url: str,
    listen: str,
    advertise: str | None,
    worker_id: str | None,
    token: str,
    overrides: dict[str, Any],
    ufs_options: dict[str, str],
    config_file: str | None,
    ready: Callable[[str], None],
) -> int:
    host_port(listen, "--listen")  # a bad address refused before the home opens
    stop = _stop_on_signals()
    take_environment_secrets()
    _public, secrets = split_secrets(ufs_options)
    overrides = {**overrides, **WORKER_OVERRIDES}
    # Before the store is opened: its connector is counted for /metrics (engine/mounts.py).
    metrics.ENABLED = True
    engine = Engine.open_home(home, overrides, config_file=config_file, root_secrets=secrets)
    try:
        setup_logging(home, engine.config.log_level)
        # Read-only: a worker serves reads; writes go to the store from the clients.
        attach_root(engine, uri, ufs_options, readonly=True)
        options = ServeOptions(listen, advertise, worker_id)
        with serving(engine, token, cluster_url, uri, options) as service:
            set_title(f"shoal: worker {service.id} of {service.cluster.name}")
            # Clients' changes: the old version's blocks dropped before a client asks for
            # the new one (which it does with the version it expects: fuse/blockserver.py).
            events = Events(service.etcd, service.cluster, uri, f"worker-{service.id}")
            events.follow(PathRefresher(engine.fs))
            try:
                service.register()
                log.info("worker %s serving %s at %s (home %s)", service.id, uri,
                         service.addr, home)  # fmt: skip
                ready(service.id)
                while not stop.wait(1.0):
                    pass
            finally:
                events.close()
    finally:
        engine.close(release_memory=True)
    return 0

"""`shoal worker`: a cluster's cache node, served in the foreground (docs/cluster.md)."""

from __future__ import annotations

import argparse
from typing import Any

from cli import cluster_opts, secret_sources
from cli.common import UsageError, add_command, home_of
from cli.daemon_cmds import split_options


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "worker",
        cmd_worker,
        "serve UFS_URI's blocks to a cluster's clients (engine, cache and a block service)",
        description="Runs in the foreground until SIGTERM or ^C (a service manager or a"
        " Kubernetes pod runs it). Registers in etcd under a lease (--cluster"
        " etcd://HOST:PORT/CLUSTER), so that clients of the cluster (`shoal mount --cluster`)"
        " read the files the hash ring gives it from its cache, over HTTP on --listen."
        " -o KEY=VALUE: a configuration key or a UFS option, as `shoal mount` takes them."
        " The token every request must carry: --cluster-token-file PATH (mode 0600) or"
        " --cluster-token-stdin.",
    )
    cluster_opts.add_arguments(p, required=True)
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="the block service's")
    p.add_argument("--advertise", metavar="HOST:PORT", help="where clients reach it (--listen)")
    p.add_argument("--id", help="its name in the cluster (its address); keep it across restarts")
    p.add_argument("--config", metavar="FILE", help="a TOML configuration file")
    p.add_argument("-o", dest="option", action="append", default=[], metavar="KEY=VALUE")
    secret_sources.add_arguments(p)
    p.add_argument("uri", metavar="UFS_URI")


def cmd_worker(args: argparse.Namespace) -> int:
    home = home_of(args)
    overrides, ufs, readonly, nonempty = split_options(args.option)
    if readonly or nonempty:
        raise UsageError("-o ro and -o nonempty are for mounts: a worker only reads its store")
    token = cluster_opts.token(args)
    ufs = secret_sources.gather(ufs, stdin_key=args.secret_key_stdin, use_environment=True)
    from fuse import worker  # pyfuse3 loads only for the daemons

    def ready(worker_id: str) -> None:
        print(f"worker {worker_id} ready", flush=True)

    return worker.run(
        home, args.uri, cluster_url=args.cluster, listen=args.listen, advertise=args.advertise,
        worker_id=args.id, token=token, overrides=overrides, ufs_options=ufs,
        config_file=args.config, ready=ready,
    )  # fmt: skip

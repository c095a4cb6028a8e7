"""`shoal mount` and `shoal umount`: the daemon that serves a home through FUSE."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from cli import cluster_opts, secret_sources
from cli.common import EXIT_FAILED, EXIT_OK, UsageError, add_command, home_of
from engine.credentials import ENV_SECRETS
from engine.errors import InvalidArgument, ShoalError
from fuse.mountinfo import alive, daemon_pid, shoal_mounts
from journal.storage import makedirs_private

if TYPE_CHECKING:
    from engine.cluster.client import ClusterClient
    from fuse.admin import CommandRunner
    from fuse.serving import ServeOptions

# -o keys that are the daemon's own, not options of the UFS.
FLAG_OPTIONS = {
    "debug": ("log.level", "DEBUG"),
    "allow_other": ("fuse.allow_other", "true"),
}
TOP_LEVEL_CONFIG_KEYS = ("block_size", "write_type", "read_type")
READY = b"ready\n"
UMOUNT_WAIT_S = 300.0


def register(sub: Any, common: argparse.ArgumentParser, run_command: CommandRunner) -> None:
    """``run_command`` runs the admin channel's commands in the daemon (cli.main hands it in:
    this module is below it)."""
    p = add_command(
        sub,
        common,
        "mount",
        cmd_mount,
        "serve UFS_URI at MOUNTPOINT through FUSE (engine, cache and mount in one daemon)",
        description="Mounts UFS_URI (a local path, file:///PATH, s3://BUCKET[/PREFIX] or"
        " az://CONTAINER[/PREFIX]) at"
        " MOUNTPOINT and returns once the mount is live; the daemon goes on in the background"
        " (logs in <home>/logs/shoal.log). -o KEY=VALUE sets a configuration key"
        " (docs/configuration.md; e.g. -o cache.readahead_blocks=4, -o write_type=CACHE_THROUGH)"
        " or, for any other key, an option of the UFS (S3: endpoint=http://HOST:PORT, region,"
        " path_style=true, profile, ...; an unknown one is refused with the list); -o debug"
        " logs verbosely; -o allow_other lets other users in; -o ro mounts read-only;"
        " -o nonempty mounts over a directory that has files (they are hidden meanwhile)."
        " Secrets:"
        " -o secret_key_file=PATH (mode 0600), --secret-key-stdin, -o profile=NAME or the"
        " AWS_* environment variables; the daemon gets them through a pipe and keeps them in"
        " memory only (-o secret_key=VALUE works, with a warning: `ps` shows it).",
    )
    p.add_argument("--config", metavar="FILE", help="a TOML configuration file")
    p.add_argument("-o", dest="option", action="append", default=[], metavar="KEY[=VALUE]")
    p.add_argument("--foreground", action="store_true", help="serve in this process")
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    # The daemon's options, secrets among them, come through this pipe: never argv nor env.
    p.add_argument("--options-fd", type=int, help=argparse.SUPPRESS)
    secret_sources.add_arguments(p)
    # Cluster mode: file bytes from the workers that own them (docs/cluster.md).
    cluster_opts.add_arguments(p, required=False)
    # One process both client and worker: the block service over this mount's own engine.
    p.add_argument(
        "--serve",
        metavar="HOST:PORT",
        help="with --cluster: be a worker too, its block service listening here",
    )
    p.add_argument("--advertise", metavar="HOST:PORT", help="where others reach it (--serve)")
    p.add_argument("--id", help="its worker id in the cluster (its address); keep it")
    p.add_argument("uri", metavar="UFS_URI")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.set_defaults(run_command=run_command)

    p = add_command(
        sub,
        common,
        "umount",
        cmd_umount,
        "unmount a Shoal mount; returns once its daemon has flushed and checkpointed",
    )
    p.add_argument("mountpoint", metavar="MOUNTPOINT")


Split = tuple[dict[str, Any], dict[str, str], bool, bool]


def split_options(items: list[str]) -> Split:
    """(configuration overrides, UFS options, read-only, nonempty) from -o items."""
    overrides: dict[str, Any] = {}
    ufs: dict[str, str] = {}
    readonly = nonempty = False
    for item in items:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not key:
                raise UsageError(f"mount option {item!r} has an empty key")
            if key in FLAG_OPTIONS and not sep:
                name, flag = FLAG_OPTIONS[key]
                overrides[name] = flag
            elif key == "ro" and not sep:
                readonly = True
            elif key == "nonempty" and not sep:
                nonempty = True
            elif not sep:
                flags = sorted([*FLAG_OPTIONS, "ro", "nonempty"])
                near = difflib.get_close_matches(key, flags, n=1)
                hint = f"did you mean -o {near[0]}? " if near else ""
                raise UsageError(
                    f"mount option {key!r} needs a value: -o {key}=VALUE ({hint}the flags without"
                    f" a value are {', '.join(flags)})"
                )
            elif "." in key or key in TOP_LEVEL_CONFIG_KEYS:
                overrides[key] = value
            else:
                ufs[key] = value
    return overrides, ufs, readonly, nonempty


def _handed(fd: int, args: argparse.Namespace) -> Split:
    """What the command that started this daemon sent through its pipe (_start_daemon); the
    cluster's address and token, if any, into ``args``."""
    with os.fdopen(fd, "rb") as pipe:
        handed = json.loads(pipe.read())
    nonempty = bool(handed.get("nonempty"))
    args.cluster, args.given_cluster_token = handed.get("cluster"), handed.get("cluster_token")
    args.serve, args.advertise, args.id = (handed.get(k) for k in ("serve", "advertise", "id"))
    return handed["overrides"], handed["ufs"], bool(handed["readonly"]), nonempty


def _cluster(args: argparse.Namespace) -> ClusterClient | None:
    """The daemon's view of its cluster (``--cluster``), before its home opens: a cluster
    that cannot be reached stops the mount with etcd's error."""
    if not args.cluster:
        return None
    from engine.cluster.client import ClusterClient

    token = getattr(args, "given_cluster_token", None) or cluster_opts.token(args)
    return ClusterClient(args.cluster, args.uri, token)


def _serve_options(args: argparse.Namespace) -> ServeOptions | None:
    """The worker role's options (``--serve``), checked before the daemon starts."""
    if not args.serve:
        if args.advertise or args.id:
            raise UsageError("--advertise and --id name a worker: give --serve HOST:PORT too")
        return None
    from fuse.serving import ServeOptions, host_port  # pyfuse3 with it: only for --serve

    if not args.cluster:
        raise UsageError("--serve makes the mount a worker of a cluster: give --cluster too")
    host_port(args.serve, "--serve")
    if args.advertise:
        host_port(args.advertise, "--advertise")
    return ServeOptions(args.serve, args.advertise, args.id, what="--serve")


def cmd_mount(args: argparse.Namespace) -> int:
    home = home_of(args)
    serve = _serve_options(args) if args.options_fd is None else None
    if args.options_fd is not None:  # a daemon started by _start_daemon: all gathered there
        if not args.foreground:
            raise UsageError("--options-fd is for the daemon that `shoal mount` starts")
        overrides, ufs_options, readonly, nonempty = _handed(args.options_fd, args)
    else:
        overrides, ufs_options, readonly, nonempty = split_options(args.option)
        ufs_options = secret_sources.gather(
            ufs_options, stdin_key=args.secret_key_stdin, use_environment=True
        )
    if args.foreground:
        from fuse import daemon  # pyfuse3 loads only for the daemon

        ready_fd = args.ready_fd

        def ready() -> None:
            if ready_fd is not None:
                os.write(ready_fd, READY)
                os.close(ready_fd)

        serve = _serve_options(args)
        if serve is not None:  # a worker's settings (prefetch off), as `shoal worker` has them
            from engine import metrics
            from fuse.serving import WORKER_OVERRIDES

            overrides = {**overrides, **WORKER_OVERRIDES}
            metrics.ENABLED = True  # its /metrics counts the store's requests, as a worker's
        cluster = _cluster(args)
        try:
            return daemon.run(
                home,
                args.uri,
                args.mountpoint,
                overrides=overrides,
                ufs_options=ufs_options,
                readonly=readonly,
                nonempty=nonempty,
                config_file=args.config,
                ready=ready,
                run_command=args.run_command,
                cluster=cluster,
                serve=serve,
            )
        finally:
            if cluster is not None:
                cluster.close()
    handed = {"overrides": overrides, "ufs": ufs_options, "readonly": readonly}
    handed["nonempty"] = nonempty
    if args.cluster:  # the token goes through the pipe with the other secrets
        handed.update(cluster=args.cluster, cluster_token=cluster_opts.token(args))
    if serve is not None:
        handed.update(serve=serve.listen, advertise=serve.advertise, id=serve.worker_id)
    return _start_daemon(args, home, json.dumps(handed).encode())


def start_mount(home: str, uri: str, mountpoint: str, split: Split) -> int:
    """`shoal mount` for another command (`shoal bench read UFS_URI`): the daemon started as
    this command starts it, its options (``split_options``'s, secrets already gathered) handed
    through the pipe, never an argv. Its exit code; the daemon's error is on stderr."""
    overrides, ufs_options, readonly, nonempty = split
    handed = {"overrides": overrides, "ufs": ufs_options, "readonly": readonly}
    handed["nonempty"] = nonempty
    args = argparse.Namespace(verbose=0, config=None, uri=uri, mountpoint=mountpoint)
    return _start_daemon(args, home, json.dumps(handed).encode())


def _start_daemon(args: argparse.Namespace, home: str, handed: bytes) -> int:
    """Starts the daemon in its own session, handing it ``handed`` (its options, secrets
    among them) through a pipe; returns when its mount is live, or with the error it stopped
    on."""
    logs = os.path.join(home, "logs")
    makedirs_private(logs)
    errors = os.path.join(logs, "daemon.stderr")
    # -P: the working directory is not put on sys.path, so a user's package named like one of
    # ours (engine/, cli/) where the command was typed cannot stand in for the installed Shoal.
    argv = [sys.executable, "-P", "-m", "cli.main", "mount", "--foreground", "--home", home]
    argv += ["-v"] * (args.verbose or 0)
    if args.config:
        argv += ["--config", os.path.abspath(args.config)]
    # Anyone can read a process's argv, and a daemon's environment is inherited by whatever it
    # starts: the options, secrets among them, go through a pipe instead, and secrets this
    # command took from its environment are not passed on in the daemon's.
    env = {k: v for k, v in os.environ.items() if k not in ENV_SECRETS}
    options_r, options_w = os.pipe()
    r, w = os.pipe()
    argv += ["--options-fd", str(options_r), "--ready-fd", str(w)]
    argv += [args.uri, os.path.abspath(args.mountpoint)]
    with open(os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as err:
        proc = subprocess.Popen(
            argv,
            pass_fds=(w, options_r),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            env=env,
        )
    os.close(w)
    os.close(options_r)
    try:
        with os.fdopen(options_w, "wb") as pipe:
            pipe.write(handed)
    except BrokenPipeError:  # the daemon stopped before reading: its stderr says why
        pass
    with os.fdopen(r, "rb") as pipe:
        said = pipe.read()
    if said == READY:
        return EXIT_OK
    code = proc.wait()
    with open(errors) as err:
        sys.stderr.write(err.read())
    return code or EXIT_FAILED


def cmd_umount(args: argparse.Namespace) -> int:
    mountpoint = os.path.abspath(args.mountpoint)
    entry = shoal_mounts().get(mountpoint)
    if entry is None:
        raise InvalidArgument(f"{mountpoint} is not a Shoal mount")
    home = entry[0]
    pid = daemon_pid(home)
    if pid is None or not alive(pid):
        # The daemon died: only the kernel's side is left to clear.
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=True)
        return EXIT_OK
    done = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, text=True)
    if done.returncode != 0:
        raise ShoalError(f"{mountpoint}: {done.stderr.strip() or 'fusermount3 -u failed'}")
    deadline = time.monotonic() + UMOUNT_WAIT_S
    while alive(pid):
        if time.monotonic() > deadline:
            raise ShoalError(f"the daemon (pid {pid}) of {home} did not stop within 5 minutes")
        time.sleep(0.05)
    return EXIT_OK

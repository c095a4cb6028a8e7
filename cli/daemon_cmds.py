"""`shoal mount` and `shoal umount`: the daemon that serves a home through FUSE."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from cli.common import EXIT_FAILED, EXIT_OK, UsageError, add_command, home_of
from engine.errors import InvalidArgument, ShoalError
from fuse.mountinfo import alive, daemon_pid, shoal_mounts
from journal.storage import makedirs_private

if TYPE_CHECKING:
    from fuse.admin import CommandRunner

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
        description="Mounts UFS_URI (a local path, file:///PATH or s3://BUCKET[/PREFIX]) at"
        " MOUNTPOINT and returns once the mount is live; the daemon goes on in the background"
        " (logs in <home>/logs/shoal.log). -o KEY=VALUE sets a configuration key"
        " (docs/configuration.md; e.g. -o cache.readahead_blocks=4, -o write_type=CACHE_THROUGH)"
        " or, for any other key, an option of the UFS (e.g. -o endpoint_url=...); -o debug logs"
        " verbosely; -o allow_other lets other users in; -o ro mounts read-only.",
    )
    p.add_argument("--config", metavar="FILE", help="a TOML configuration file")
    p.add_argument("-o", dest="option", action="append", default=[], metavar="KEY[=VALUE]")
    p.add_argument("--foreground", action="store_true", help="serve in this process")
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
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


def split_options(items: list[str]) -> tuple[dict[str, Any], dict[str, str], bool]:
    """(configuration overrides, UFS options, read-only) from -o items."""
    overrides: dict[str, Any] = {}
    ufs: dict[str, str] = {}
    readonly = False
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
            elif not sep:
                raise UsageError(f"mount option {key!r} needs a value: -o {key}=VALUE")
            elif "." in key or key in TOP_LEVEL_CONFIG_KEYS:
                overrides[key] = value
            else:
                ufs[key] = value
    return overrides, ufs, readonly


def cmd_mount(args: argparse.Namespace) -> int:
    home = home_of(args)
    items = list(args.option)
    if args.foreground and "SHOAL_MOUNT_OPTIONS" in os.environ:
        items += json.loads(os.environ.pop("SHOAL_MOUNT_OPTIONS"))
    overrides, ufs_options, readonly = split_options(items)
    if args.foreground:
        from fuse import daemon  # pyfuse3 loads only for the daemon

        ready_fd = args.ready_fd

        def ready() -> None:
            if ready_fd is not None:
                os.write(ready_fd, READY)
                os.close(ready_fd)

        return daemon.run(
            home,
            args.uri,
            args.mountpoint,
            overrides=overrides,
            ufs_options=ufs_options,
            readonly=readonly,
            config_file=args.config,
            ready=ready,
            run_command=args.run_command,
        )
    return _start_daemon(args, home)


def _start_daemon(args: argparse.Namespace, home: str) -> int:
    """Starts the daemon in its own session; returns when its mount is live, or with the
    error it stopped on."""
    logs = os.path.join(home, "logs")
    makedirs_private(logs)
    errors = os.path.join(logs, "daemon.stderr")
    argv = [sys.executable, "-m", "cli.main", "mount", "--foreground", "--home", home]
    argv += ["-v"] * (args.verbose or 0)
    if args.config:
        argv += ["--config", os.path.abspath(args.config)]
    # The options reach the daemon through its environment, not its argv: they may hold
    # secrets, and anyone can read a process's argv (environ is its owner's only).
    env = dict(os.environ, SHOAL_MOUNT_OPTIONS=json.dumps(args.option))
    r, w = os.pipe()
    argv += ["--ready-fd", str(w), args.uri, os.path.abspath(args.mountpoint)]
    with open(os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as err:
        proc = subprocess.Popen(
            argv,
            pass_fds=(w,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            env=env,
        )
    os.close(w)
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

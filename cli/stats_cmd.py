"""`shoal stats MOUNTPOINT`: a live per-second view of the daemon serving a mount, like
`juicefs stats`: FUSE requests by kind and their latency, bytes through FUSE, cache hits and
misses, bytes from and to the stores, journal appends and fsyncs, prefetch and the storer.

The daemon keeps running totals (fuse/counters.py) and hands them out on its admin channel
without taking the command lock, so the view keeps going while `shoal fs load` runs; this
side asks once per interval over one connection and prints the differences
(cli/stats_view.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sys
import time
from typing import Any

from cli import stats_view
from cli.common import EXIT_OK, add_command, whole_number
from engine.errors import InvalidArgument, ShoalError
from fuse.admin import SOCKET, short_path
from fuse.mountinfo import alive, daemon_pid, shoal_mounts

HEADER_EVERY = 20  # lines between two headers on a terminal, as vmstat


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "stats",
        cmd_stats,
        "a live per-second view of a mount's daemon: FUSE requests, hits, stores, journal",
        description="Prints one line per interval: FUSE requests per second by kind and their"
        " mean latency, bytes read and written through FUSE, cache hits and misses (blocks),"
        " bytes read from and written to the stores, journal appends and fsyncs, blocks"
        " prefetched, stored and dropped by the background storer, and its queue. Reads the"
        " kernel's page cache serves never reach Shoal and are not counted.",
    )
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="where `shoal mount` mounted it")
    p.add_argument(
        "--interval", type=_seconds, default=1.0, metavar="SECONDS", help="default 1"
    )  # fmt: skip
    p.add_argument(
        "--count",
        type=whole_number(1, "a number of lines", "--count must be at least 1"),
        metavar="N",
        help="stop after N lines (default: until interrupted)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object of raw numbers a line")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("--interval must be a positive number of seconds")
    return value


class DaemonLink:
    """One connection to the admin channel of the daemon serving ``mountpoint``."""

    def __init__(self, mountpoint: str) -> None:
        self.mountpoint = mountpoint
        mounts = shoal_mounts()
        entry = mounts.get(mountpoint) or mounts.get(os.path.realpath(mountpoint))
        if entry is None:
            raise InvalidArgument(f"{mountpoint} is not a Shoal mount (no fuse.shoal mount there)")
        home = entry[0]
        pid = daemon_pid(home)
        if pid is None or not alive(pid):
            raise ShoalError(
                f"{mountpoint}: its daemon is gone (home {home}); `shoal umount {mountpoint}`"
                " clears the mount"
            )
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with short_path(home) as folder:
                self.sock.connect(os.path.join(folder, SOCKET))
        except OSError as exc:
            self.sock.close()
            raise ShoalError(
                f"{mountpoint}: cannot reach its daemon (pid {pid}) through"
                f" {os.path.join(home, SOCKET)}: {exc.strerror or exc}"
                + ("; only the user running the daemon may" if isinstance(exc, PermissionError)
                   else "")
            ) from None  # fmt: skip
        self.wire = self.sock.makefile("rwb")

    def sample(self) -> dict[str, Any]:
        try:
            self.wire.write(b'{"counters": true}\n')
            self.wire.flush()
            frame = json.loads(self.wire.readline() or b"null")
        except (OSError, ValueError):
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("counters"), dict):
            raise ShoalError(f"{self.mountpoint}: its daemon stopped")
        counters: dict[str, Any] = frame["counters"]
        return counters

    def close(self) -> None:
        # A request the daemon never took is still buffered: flushing it to a daemon that has
        # gone raises EPIPE, which must not hide why the view ended (nor pass for a closed
        # stdout, which ends a command quietly).
        with contextlib.suppress(OSError):
            self.wire.close()
        self.sock.close()


def cmd_stats(args: argparse.Namespace) -> int:
    mountpoint = os.path.abspath(args.mountpoint)
    link = DaemonLink(mountpoint)
    terminal = sys.stdout.isatty()
    # On a terminal, the groups that fit its width; into a pipe or a file, all of them.
    groups = stats_view.fit(shutil.get_terminal_size().columns if terminal else None)
    try:
        prev = link.sample()
        start = time.monotonic()
        printed = 0
        while args.count is None or printed < args.count:
            # On a fixed schedule, so the lines do not drift by the time each one costs.
            time.sleep(max(0.0, start + (printed + 1) * args.interval - time.monotonic()))
            asked = time.time()  # the interval ends no earlier: what came before it is in
            cur = link.sample()
            figures = stats_view.interval(prev, cur, mountpoint)
            if args.json:
                print(json.dumps({"time": round(asked, 6), **figures}), flush=True)
            else:
                if printed == 0 or (terminal and printed % HEADER_EVERY == 0):
                    print("\n".join(stats_view.header(groups)))
                print(stats_view.line(figures, groups), flush=True)
            prev = cur
            printed += 1
    except KeyboardInterrupt:  # how a live view is normally ended
        pass
    finally:
        link.close()
    return EXIT_OK

"""The daemon's admin channel: commands run inside a running daemon, on its engine.

A daemon holds its home's lock, so a command that opens the home itself would be refused.
Instead `shoal report`, `shoal journal checkpoint` and every `shoal fs ...` are sent through a
Unix socket in the home (``admin.sock``, mode 0600: only its owner may talk to it) and run
there; their output streams back as it is written (progress bars included) and the exit code
ends the exchange. A path inside a Shoal mountpoint names the file in that mount's namespace
(`shoal fs load /mnt/data/train`), and that mount's home is used when no home is given.

The wire is newline-delimited JSON: the client sends ``{"argv": [...]}`` and what its terminal
is (``tty``, ``tty_out``, ``columns``: progress bars are drawn for it); the daemon answers
``{"out": text}`` and ``{"err": text}`` frames, then ``{"exit": code}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys

from cli.common import EXIT_FAILED, EXIT_USAGE
from cli.progress import is_terminal
from engine.home import default_home
from fuse.admin import SOCKET, short_path
from fuse.mountinfo import shoal_mounts

# Commands whose data moves between the caller's files or terminal and Shoal: in the daemon
# they would read its stdin and write its stdout. While a daemon serves the home, the mount
# does their job (cp, cat).
LOCAL_IO = ("put", "cat")


def runs_online(args: argparse.Namespace) -> bool:
    command = args.command
    if command == "journal":
        return args.journal_command == "checkpoint"
    if command == "fs":
        return args.fs_command not in LOCAL_IO
    # `shoal report --cluster` asks etcd and the workers, not the home's daemon.
    return command == "report" and not getattr(args, "cluster", None)


# -- the client ------------------------------------------------------------------------------


def translate(argv: list[str]) -> tuple[list[str], str | None]:
    """``argv`` with paths inside Shoal mountpoints made namespace paths, and the home of the
    mount they are in (None if no argument is inside one)."""
    mounts = shoal_mounts()
    home = None
    out = []
    for token in argv:
        if token.startswith(("/", ".")) and mounts:
            path = os.path.abspath(token)
            for point, (mount_home, _device) in mounts.items():
                if path == point or path.startswith(point.rstrip("/") + "/"):
                    rel = os.path.relpath(path, point)
                    token = "/" if rel == "." else "/" + rel
                    home = home or mount_home
                    break
        out.append(token)
    return out, home


def _terminal() -> dict[str, object]:
    """Whether our stderr and stdout are terminals, and how wide: the daemon's progress bars
    (cli/progress.py) are drawn as if its stderr were ours."""
    tty = is_terminal(sys.stderr)
    return {
        "tty": tty,
        "tty_out": is_terminal(sys.stdout),
        "columns": shutil.get_terminal_size().columns if tty else None,
    }


def _token_file_absolute(argv: list[str]) -> list[str]:
    """The daemon's working directory is not ours: a token file is named to it absolutely
    (`shoal fs load --cluster`; the daemon reads the file, same owner)."""
    out = list(argv)
    for i, token in enumerate(out[:-1]):
        if token == "--cluster-token-file":
            out[i + 1] = os.path.abspath(out[i + 1])
    return out


def forward(argv: list[str], args: argparse.Namespace) -> int | None:
    """Runs the command in the daemon serving its home, if there is one: its exit code; None
    when the command must run here (offline)."""
    if not runs_online(args):
        return None
    if getattr(args, "cluster_token_stdin", False):  # it would read the daemon's stdin
        print("shoal: error: a command run by the home's daemon cannot read your standard"
              " input: give the token as --cluster-token-file PATH", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    argv, mount_home = translate(_token_file_absolute(argv))
    # The default home last: a daemon serving it takes the commands that name no home.
    home = args.home or os.environ.get("SHOAL_HOME") or mount_home or default_home()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with short_path(os.path.abspath(home)) as folder:
            sock.connect(os.path.join(folder, SOCKET))
    except OSError:  # no daemon serves this home (no socket, refused, not ours to reach)
        sock.close()
        return None
    with sock, sock.makefile("rwb") as wire:
        wire.write(json.dumps({"argv": argv, **_terminal()}).encode() + b"\n")
        wire.flush()
        for line in wire:
            frame = json.loads(line)
            if "out" in frame:
                sys.stdout.write(frame["out"])
                sys.stdout.flush()
            elif "err" in frame:
                sys.stderr.write(frame["err"])
                sys.stderr.flush()
            elif "exit" in frame:
                return int(frame["exit"])
    print("shoal: error: the daemon closed the admin channel mid-command", file=sys.stderr)
    return EXIT_FAILED

"""The daemon's admin channel: commands run inside a running daemon, on its engine.

A daemon holds its home's lock, so a command that opens the home itself would be refused.
Instead `shoal report`, `shoal journal checkpoint` and every `shoal fs ...` are sent through a
Unix socket in the home (``admin.sock``, mode 0600: only its owner may talk to it) and run
there; their output streams back as it is written (progress bars included) and the exit code
ends the exchange. A path inside a Shoal mountpoint names the file in that mount's namespace
(`shoal fs load /mnt/data/train`), and that mount's home is used when no home is given.

The wire is newline-delimited JSON: the client sends ``{"argv": [...]}``; the daemon answers
``{"out": text}`` and ``{"err": text}`` frames, then ``{"exit": code}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import socketserver
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import IO, Any

from engine.cli.common import EXIT_FAILED, EXIT_USAGE
from engine.engine import Engine
from fuse.mountinfo import shoal_mounts

log = logging.getLogger(__name__)

SOCKET = "admin.sock"


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
    return command == "report"


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


def forward(argv: list[str], args: argparse.Namespace) -> int | None:
    """Runs the command in the daemon serving its home, if there is one: its exit code; None
    when the command must run here (offline)."""
    if not runs_online(args):
        return None
    argv, mount_home = translate(argv)
    home = args.home or os.environ.get("SHOAL_HOME") or mount_home
    if home is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _short_path(os.path.abspath(home)) as folder:
            sock.connect(os.path.join(folder, SOCKET))
    except OSError:  # no daemon serves this home (no socket, refused, not ours to reach)
        sock.close()
        return None
    with sock, sock.makefile("rwb") as wire:
        wire.write(json.dumps({"argv": argv}).encode() + b"\n")
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


@contextmanager
def _short_path(folder: str) -> Iterator[str]:
    """``folder`` as a path short enough for a Unix socket address (108 bytes at most): a
    home may be deeper than that, so it is reached through a descriptor of it."""
    if len(os.fsencode(folder)) < 80:
        yield folder
        return
    fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


# -- the daemon's side -----------------------------------------------------------------------


class _Frames:
    """A text stream that sends what is written to it as frames of one kind."""

    def __init__(self, wire: IO[bytes], kind: str) -> None:
        self.wire, self.kind = wire, kind

    def write(self, text: str) -> int:
        if text:
            self.wire.write(json.dumps({self.kind: text}).encode() + b"\n")
        return len(text)

    def flush(self) -> None:
        self.wire.flush()

    def isatty(self) -> bool:
        return False


class AdminServer:
    """Serves the admin channel of ``engine``'s home from a thread per connection; commands
    run one at a time (their output is redirected process-wide while they run)."""

    def __init__(self, engine: Engine, home: str) -> None:
        from engine.cli import common

        common.ONLINE_ENGINE = engine
        self.path = os.path.join(home, SOCKET)
        try:
            os.unlink(self.path)  # left by a daemon that died; we hold the home's lock
        except FileNotFoundError:
            pass
        command_lock = threading.Lock()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    request = json.loads(self.rfile.readline())
                    argv = [str(a) for a in request["argv"]]
                except (ValueError, KeyError, TypeError):
                    return
                with command_lock:
                    code = _run_here(argv, self.wfile)
                self.wfile.write(json.dumps({"exit": code}).encode() + b"\n")

        # Bound in a private directory, made 0600 there, then moved into place: other users
        # never see it with looser permissions (a umask would be process-wide).
        private = tempfile.mkdtemp(prefix=".admin-", dir=home)
        try:
            with _short_path(private) as folder:
                self.server = socketserver.ThreadingUnixStreamServer(
                    os.path.join(folder, SOCKET), Handler
                )
            os.chmod(os.path.join(private, SOCKET), 0o600)
            os.rename(os.path.join(private, SOCKET), self.path)
        finally:
            shutil.rmtree(private, ignore_errors=True)
        self._command_lock = command_lock
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="admin-channel", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        from engine.cli import common

        self.server.shutdown()  # no new commands
        self.server.server_close()
        with self._command_lock:  # the one running, if any, finishes first
            pass
        common.ONLINE_ENGINE = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _run_here(argv: list[str], wire: Any) -> int:
    from engine.cli.main import build_parser, run

    out, err = _Frames(wire, "out"), _Frames(wire, "err")
    with redirect_stdout(out), redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse has printed why
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if not runs_online(args):
            print("shoal: error: this command does not run through the daemon", file=sys.stderr)
            return EXIT_USAGE
        # Only the command's name is logged: its arguments may hold secrets (fs mount -o).
        name = " ".join(
            str(w) for w in (args.command, getattr(args, "fs_command", None)) if w is not None
        )
        log.info("admin channel: shoal %s", name)
        try:
            return run(args)
        except Exception:
            log.exception("admin command %s failed", name)
            print("shoal: error: the command failed in the daemon (see its log)", file=sys.stderr)
            return EXIT_FAILED

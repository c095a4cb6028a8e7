"""The daemon's side of the admin channel: a Unix socket in the home that runs commands on the
daemon's engine and streams their output back.

The wire is newline-delimited JSON: the client sends ``{"argv": [...]}`` (with ``"tty"``: whether
its stderr is a terminal, and ``"columns"``: how wide, so progress bars are drawn for it, or
not at all in a script); the daemon answers
``{"out": text}`` and ``{"err": text}`` frames, then ``{"exit": code}``. A ``{"counters": true}``
line is answered with the daemon's running totals instead (fuse/counters.py), as often as it
is sent (`shoal stats`). Which commands exist and how they run is the command line's
business: it hands the server a ``CommandRunner`` (the daemon must not import the CLI, which
sits on the floor above it).
"""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from io import BufferedIOBase

from engine.engine import Engine
from fuse import counters

SOCKET = "admin.sock"

# Runs one command (its argv) on the daemon's engine, writing to sys.stdout/sys.stderr (the
# server redirects both to the wire while it runs); returns the exit code.
CommandRunner = Callable[[list[str], Engine], int]


@contextmanager
def short_path(folder: str) -> Iterator[str]:
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


class _Frames:
    """A text stream that sends what is written to it as frames of one kind."""

    def __init__(
        self, wire: BufferedIOBase, kind: str, tty: bool = False, columns: int | None = None
    ) -> None:
        self.wire, self.kind = wire, kind
        self.tty, self.columns = tty, columns

    def write(self, text: str) -> int:
        if text:
            self.wire.write(json.dumps({self.kind: text}).encode() + b"\n")
        return len(text)

    def flush(self) -> None:
        self.wire.flush()

    def isatty(self) -> bool:
        # The client's terminal, not ours: progress bars are drawn for where the user is.
        return self.tty


def _serve_counters(
    engine: Engine, request: dict[str, object], rfile: BufferedIOBase, wfile: BufferedIOBase
) -> None:
    """`shoal stats`: the counters, for each ``{"counters": true}`` line, until the client
    goes. Not a command: no command lock, so it answers while `shoal fs load` runs."""
    while request.get("counters") is True:
        try:
            frame = json.dumps({"counters": counters.snapshot(engine)})
        except Exception:  # the engine is closing under us: the client sees the end
            return
        try:
            wfile.write(frame.encode() + b"\n")
            wfile.flush()
            request = json.loads(rfile.readline())
        except (OSError, ValueError):  # the client went (an empty line) or spoke nonsense
            return
        if not isinstance(request, dict):
            return


class AdminServer:
    """Serves the admin channel of ``engine``'s home from a thread per connection; commands
    run one at a time (their output is redirected process-wide while they run)."""

    def __init__(self, engine: Engine, home: str, run_command: CommandRunner) -> None:
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
                    if request.get("counters") is True:  # `shoal stats`: not a command
                        _serve_counters(engine, request, self.rfile, self.wfile)
                        return
                    argv = [str(a) for a in request["argv"]]
                    tty = request.get("tty") is True
                    columns = request.get("columns")
                    columns = columns if isinstance(columns, int) and columns > 0 else None
                except (ValueError, KeyError, TypeError, AttributeError):
                    return
                out = _Frames(self.wfile, "out", request.get("tty_out") is True, columns)
                err = _Frames(self.wfile, "err", tty, columns)
                with command_lock, redirect_stdout(out), redirect_stderr(err):
                    code = run_command(argv, engine)
                    engine.fs.make_durable()  # as offline: a command's changes durable at exit
                self.wfile.write(json.dumps({"exit": code}).encode() + b"\n")

        # Bound in a private directory, made 0600 there, then moved into place: other users
        # never see it with looser permissions (a umask would be process-wide).
        private = tempfile.mkdtemp(prefix=".admin-", dir=home)
        try:
            with short_path(private) as folder:
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
        self.server.shutdown()  # no new commands
        self.server.server_close()
        with self._command_lock:  # the one running, if any, finishes first
            pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

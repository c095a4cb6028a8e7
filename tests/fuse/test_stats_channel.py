"""The admin channel's counters (`shoal stats`): answered beside a running command, which holds
the channel's command lock for as long as it runs (`shoal fs load` of a dataset: minutes), so
the live view never stalls behind it."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

from engine.engine import Engine
from fuse.admin import SOCKET, AdminServer, short_path
from tests.invariants import OpenEngine


def _connect(home: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with short_path(str(home)) as folder:
        sock.connect(os.path.join(folder, SOCKET))
    return sock


def test_counters_answer_while_a_command_holds_the_admin_channel(
    open_engine: OpenEngine, home: Path
) -> None:
    engine = open_engine()
    engine.ns.mkdir("/data")  # one entry: the totals have something to say
    running, finish = threading.Event(), threading.Event()

    def slow_command(argv: list[str], _engine: Engine) -> int:
        running.set()
        finish.wait(60)
        return 0

    server = AdminServer(engine, str(home), slow_command)
    server.start()
    command = _connect(home)
    try:
        command.sendall(json.dumps({"argv": ["fs", "load", "-R", "/data"]}).encode() + b"\n")
        assert running.wait(30)
        with _connect(home) as sock, sock.makefile("rwb") as wire:
            for _ in range(2):  # one connection, a snapshot per request
                wire.write(b'{"counters": true}\n')
                wire.flush()
                counters = json.loads(wire.readline())["counters"]
                assert counters["journal_appends"] == engine.journal.last_seq >= 1
                assert counters["pid"] == os.getpid() and isinstance(counters["ops"], dict)
                assert counters["cache_hits"] == engine.cache.stats.hits  # type: ignore[union-attr]
        assert not finish.is_set()  # the command was still running all along
    finally:
        finish.set()
        with command.makefile("rb") as frames:
            assert json.loads(frames.readline()) == {"exit": 0}
        command.close()
        server.close()

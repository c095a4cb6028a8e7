"""Running the real `shoal` command line on a pseudo-terminal, as a user types it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from tests.cli.shoal_cli import ROOT, env


def shoal_on_terminal(*args: str, columns: int = 100, **extra_env: str) -> tuple[int, str]:
    """Runs `python -m cli.main ARGS` with stdin, stdout and stderr on a new pseudo-terminal
    (``columns`` wide); its exit code and everything the terminal was sent."""
    master, slave = pty.openpty()
    os.set_inheritable(slave, True)
    child_env = env(COLUMNS=str(columns), LINES="40", **extra_env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=child_env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every end of the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=300)
    return code, b"".join(chunks).decode(errors="replace")

"""Running the real `shoal` command line on a pseudo-terminal, as a user types it."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from tests.cli.shoal_cli import ROOT, env


def shoal_on_terminal(
    *args: str, size: tuple[int, int] | None = (40, 100), **extra_env: str
) -> tuple[int, str]:
    """Runs `python -m cli.main ARGS` with stdin, stdout and stderr on a new pseudo-terminal
    of ``size`` (rows, columns; None: never sized, 0x0, as `script` makes in a pipeline); its
    exit code and everything the terminal was sent."""
    master, slave = pty.openpty()
    if size is not None:
        rows, columns = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    os.set_inheritable(slave, True)
    child_env = env(**extra_env)
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

"""Crashes and damage made for real, and what the command line says after them: a Python child
killed with SIGKILL at the point it announces, a byte of a journal file flipped, and the names
and one-line errors of the real `shoal` command run on the home."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.shoal_cli import shoal

ROOT = Path(__file__).resolve().parents[1]


def killed_once_said(
    script: str, *args: str, said: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Runs ``python -c script args`` from the repository root, kills it with SIGKILL once it
    has printed its first line, and checks that the line was ``said`` (stderr shown if not)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    _out, err = proc.communicate()
    assert first == said, err
    return proc


def flip(path: Path, offset: int) -> None:
    """Inverts the byte of ``path`` at ``offset``."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def journal_files(home: Path) -> dict[str, bytes]:
    """Every file below the home's journal, by its path relative to the home."""
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted((home / "journal").rglob("*"))
        if p.is_file()
    }


def names(home: Path) -> set[str]:
    """The paths `shoal fs ls /` lists on ``home``."""
    out = shoal("fs", "ls", "/", home=home).stdout
    return {"/" + line.split()[-1] for line in out.splitlines()}


def one_line(stderr: str) -> str:
    """``stderr``'s only line (failing when there are more or none)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]

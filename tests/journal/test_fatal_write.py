"""A failed journal write is fatal: the process stops with status 75 before acknowledging the
mutation, and the next start recovers everything acknowledged before it.

Both writers are covered: the thread writer with an injected EIO; the writer process with real
faults (a full file system under the journal, and the writer process killed)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from engine.engine import Engine
from journal.writer import EXIT_JOURNAL_FAILED

ROOT = Path(__file__).resolve().parents[2]

THREAD_SCRIPT = textwrap.dedent(
    """
    import errno, logging, sys
    from engine.engine import Engine
    from journal import writer

    logging.basicConfig(level=logging.INFO)
    engine = Engine.open_home(sys.argv[1], overrides={"journal.writer": "thread"})
    for i in range(5):
        engine.ns.create(f"/ok{i}")
        print(f"ACK /ok{i}", flush=True)

    def failing_write(self, data, first_seq):
        raise OSError(errno.EIO, "Input/output error (injected)")

    writer.SegmentWriter.write = failing_write
    engine.ns.create("/lost")
    print("ACK /lost", flush=True)  # must never be reached
    """
)

# Creates files until the process stops; the test fills the disk (or kills the writer) after
# the first five.
PROCESS_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from engine.engine import Engine

    logging.basicConfig(level=logging.INFO)
    engine = Engine.open_home(sys.argv[1])
    for i in range(5):
        engine.ns.create(f"/ok{i}")
        print(f"ACK /ok{i}", flush=True)
    print("READY", flush=True)
    sys.stdin.readline()
    for i in range(1_000_000):
        engine.ns.create(f"/after{i:07d}-" + "x" * 150)
        print(f"ACK /after{i:07d}-" + "x" * 150, flush=True)
    """
)


def names_in(home: Path) -> list[str]:
    engine = Engine.open_home(str(home))
    try:
        return sorted(n.name for n in engine.ns.listdir("/"))
    finally:
        engine.close(checkpoint=False)


def acked(stdout: str) -> list[str]:
    return [line.split()[1][1:] for line in stdout.splitlines() if line.startswith("ACK")]


def test_a_failed_write_stops_the_process_before_acknowledging(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-c", THREAD_SCRIPT, str(home)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == EXIT_JOURNAL_FAILED, proc.stderr
    assert acked(proc.stdout) == [f"ok{i}" for i in range(5)]
    assert "journal write failed" in proc.stderr
    assert f"[Errno {errno.EIO}]" in proc.stderr
    assert names_in(home) == [f"ok{i}" for i in range(5)]


def start_writer(home: Path) -> tuple[subprocess.Popen[str], str]:
    """The writer, once it has acknowledged its first five files; and what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PROCESS_SCRIPT, str(home)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    early = ""
    for line in proc.stdout:
        early += line
        if line.startswith("READY"):
            return proc, early
    raise AssertionError(f"the writer never got ready: {proc.communicate()[1]}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a real file system that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_stops_the_process_and_loses_nothing_acknowledged(small_fs: Path) -> None:
    home = small_fs / "home"
    proc, early = start_writer(home)
    filler = small_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # take every free page, so the next page of the log cannot be had
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    out, err = proc.communicate("go\n", timeout=120)
    assert proc.returncode == EXIT_JOURNAL_FAILED, err
    assert "journal write failed" in err
    assert f"[Errno {errno.ENOSPC}]" in err
    filler.unlink()
    names = names_in(home)
    assert set(acked(early)) == {f"ok{i}" for i in range(5)}
    missing = set(acked(early + out)) - set(names)
    assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"


def test_a_killed_writer_process_stops_the_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, early = start_writer(home)
    children = psutil.Process(proc.pid).children()
    assert len(children) == 1, children
    os.kill(children[0].pid, signal.SIGKILL)
    while children[0].status() != psutil.STATUS_ZOMBIE:  # its parent reaps it only later
        pass
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == EXIT_JOURNAL_FAILED, err
    assert "journal writer process" in err
    assert acked(early + out) == [f"ok{i}" for i in range(5)]
    assert names_in(home) == [f"ok{i}" for i in range(5)]

"""A home's pid file names its daemon by pid and start time: a killed daemon's pid, taken
since by another process, is not that daemon (`shoal mount` would take the dead mount for a
live one, `shoal umount` would wait for a stranger, a test's teardown would kill one)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuse.mountinfo import PID_FILE, alive, daemon_pid, pid_file_text
from ufs.tempfiles import process_start as start_time


@pytest.fixture
def stranger() -> Iterator[int]:
    """A live process that is no daemon of ours."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _pid_file(home: Path, text: str) -> None:
    home.mkdir(exist_ok=True)
    (home / PID_FILE).write_text(text)


def test_a_pid_file_names_the_process_that_wrote_it(tmp_path: Path) -> None:
    _pid_file(tmp_path / "home", pid_file_text("/mnt/x"))
    assert daemon_pid(str(tmp_path / "home")) == os.getpid()


def test_a_pid_taken_by_another_process_is_no_daemon(tmp_path: Path, stranger: int) -> None:
    started = start_time(stranger)
    assert started is not None
    _pid_file(tmp_path / "home", f"{stranger}\n/mnt/x\n{started - 1}\n")  # the killed one's
    assert daemon_pid(str(tmp_path / "home")) is None
    _pid_file(tmp_path / "home", f"{stranger}\n/mnt/x\n{started}\n")
    assert daemon_pid(str(tmp_path / "home")) == stranger


def test_a_pid_file_without_a_start_time_is_taken_at_its_word(
    tmp_path: Path, stranger: int
) -> None:
    _pid_file(tmp_path / "home", f"{stranger}\n/mnt/x\n")  # an older daemon's
    assert daemon_pid(str(tmp_path / "home")) == stranger


def test_no_pid_file_or_a_damaged_one_is_no_daemon(tmp_path: Path) -> None:
    assert daemon_pid(str(tmp_path / "none")) is None
    _pid_file(tmp_path / "home", "not a pid\n")
    assert daemon_pid(str(tmp_path / "home")) is None


def test_a_process_named_with_a_parenthesis_and_odd_bytes_is_told_apart(tmp_path: Path) -> None:
    """/proc/PID/stat shows the name raw: ") " and bytes that are no UTF-8 must not pass for
    its fields, nor end the check in an exception."""
    script = "open('/proc/self/comm', 'wb').write(b'x) 1 2 \\xff'); import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        comm = Path(f"/proc/{proc.pid}/comm")
        while comm.read_bytes() != b"x) 1 2 \xff\n":
            assert proc.poll() is None
        started = start_time(proc.pid)
        assert started is not None and alive(proc.pid)
        _pid_file(tmp_path / "home", f"{proc.pid}\n/mnt/a\nb\n{started + 1}\n")  # a newline
        assert daemon_pid(str(tmp_path / "home")) is None  # in the mount point, the time last
    finally:
        proc.kill()
        proc.wait()

"""Shoal run as the system runs it: under systemd (readiness through $NOTIFY_SOCKET) and from a
line of fstab (mount(8) and umount(8) through Shoal's helpers)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fuse.mountinfo import alive, shoal_mounts
from tests.cli.shoal_cli import ROOT, env, shoal
from tests.fuse.mounting import Mounted

SBIN = Path("/sbin")
NOTIFY_WAIT_S = 120.0  # a guard against a hang, not a measure


def receive(sock: socket.socket) -> set[str]:
    return set(sock.recv(4096).decode().split("\n"))


def test_daemon_notifies_ready_once_mounted_and_stopping_at_umount(tmp_path: Path) -> None:
    (tmp_path / "ufs").mkdir()
    (tmp_path / "ufs" / "a.txt").write_text("served")
    m = Mounted(tmp_path / "home", str(tmp_path / "ufs"), tmp_path / "mnt")
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(NOTIFY_WAIT_S)
        cmd = [sys.executable, "-m", "cli.main", "--home", str(m.home), "mount", "--foreground"]
        daemon = subprocess.Popen(
            [*cmd, m.uri, str(m.path)], cwd=ROOT, env=env(NOTIFY_SOCKET=address)
        )
        try:
            said = receive(sock)
            assert str(m.path) in shoal_mounts(), "READY=1 before the mount was live"
            assert "READY=1" in said and f"MAINPID={daemon.pid}" in said
            assert os.path.ismount(m.path)
            assert (m.path / "a.txt").read_text() == "served"
            shoal("umount", str(m.path))
            assert "STOPPING=1" in receive(sock)
            assert daemon.wait(timeout=NOTIFY_WAIT_S) == 0
        finally:
            m.teardown()
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()


def wrapper(path: Path, call: str) -> None:
    """A helper as pip installs it, running this tree's code (mount(8) looks in /sbin only)."""
    path.write_text(
        f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -c"
        f" 'import sys; from cli.mount_helper import {call}; sys.exit({call}())' \"$@\"\n"
    )
    path.chmod(0o755)


@contextmanager
def helpers(prefix: str = "fuse.") -> Iterator[str]:
    """The fstab type whose mount helper runs this tree's: a name of this test's own (mount(8)
    runs mount.fuse.shoal for type fuse.shoal, mount.shoal for shoal). The umount helper's name
    is fixed by the kernel's type of every Shoal mount, fuse.shoal."""
    unmount = SBIN / "umount.fuse.shoal"
    if os.path.lexists(unmount):
        pytest.skip(f"{unmount} is installed: umount(8) would run it, not this tree's")
    kind = f"{prefix}shoaltest{os.getpid()}"
    mount = SBIN / f"mount.{kind}"
    try:
        wrapper(mount, "main")
        wrapper(unmount, "umount_main")
        yield kind
    finally:
        mount.unlink(missing_ok=True)
        unmount.unlink(missing_ok=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root")
@pytest.mark.parametrize("prefix", ["fuse.", ""])
def test_fstab_line_mounts_and_umounts_through_the_helper(tmp_path: Path, prefix: str) -> None:
    (tmp_path / "ufs").mkdir()
    (tmp_path / "ufs" / "a.txt").write_text("from fstab")
    m = Mounted(tmp_path / "home", str(tmp_path / "ufs"), tmp_path / "mnt")
    fstab = tmp_path / "fstab"
    with helpers(prefix) as kind:
        options = f"home={m.home},_netdev,nofail,x-systemd.requires=network-online.target,ro"
        fstab.write_text(f"{m.uri} {m.path} {kind} {options} 0 0\n")
        try:
            done = subprocess.run(
                ["mount", "-T", str(fstab), str(m.path)], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
            assert str(m.path) in shoal_mounts()
            assert (m.path / "a.txt").read_text() == "from fstab"
            with pytest.raises(OSError):  # ro reached Shoal; mount(8)'s own options did not
                (m.path / "b.txt").write_text("x")
            pid = m.pid()
            assert pid is not None and alive(pid)
            done = subprocess.run(["umount", str(m.path)], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            # umount.fuse.shoal returned once the daemon had flushed and stopped.
            assert not alive(pid) and not os.path.ismount(m.path)
        finally:
            m.teardown()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root")
def test_fstab_helper_failure_is_one_line_and_exit_32(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    fstab = tmp_path / "fstab"
    with helpers() as kind:
        fstab.write_text(f"{tmp_path / 'missing'} {tmp_path / 'mnt'} {kind} home={tmp_path}/h\n")
        done = subprocess.run(["mount", "-T", str(fstab), str(tmp_path / "mnt")],
                              capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 32, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not os.path.ismount(tmp_path / "mnt")


def unit_command(unit: str, key: str, settings: dict[str, str]) -> list[str]:
    """The unit's ``key=`` command as systemd runs it: ``${X}`` one word, ``$X`` split at
    whitespace (an empty one no word at all); the unit's line continuations joined."""
    line = next(ln for ln in unit.replace("\\\n", "").splitlines() if ln.startswith(f"{key}="))
    words: list[str] = []
    for word in line.partition("=")[2].split():
        if word.startswith("${") and word.endswith("}"):
            words.append(settings[word[2:-1]])
        elif word.startswith("$"):
            words += settings[word[1:]].split()
        else:
            words.append(word)
    return words


def test_service_unit_commands_mount_notify_and_umount(tmp_path: Path) -> None:
    (tmp_path / "ufs").mkdir()
    (tmp_path / "ufs" / "a.txt").write_text("from the unit")
    m = Mounted(tmp_path / "home", str(tmp_path / "ufs"), tmp_path / "mnt")
    program = tmp_path / "shoal"  # the installed `shoal`, running this tree's code
    program.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m cli.main "$@"\n')
    program.chmod(0o755)
    shoal("service", "install", "t", m.uri, str(m.path), "-o", "ro,cache.readahead_blocks=2",
          "--shoal", str(program), "--unit-dir", str(tmp_path / "units"),
          "--config-dir", str(tmp_path / "conf"), "--helper-dir", str(tmp_path),
          home=m.home)  # fmt: skip
    unit = (tmp_path / "units" / "shoal@.service").read_text()
    lines = (tmp_path / "conf" / "t.env").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines)
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(NOTIFY_WAIT_S)
        start = unit_command(unit, "ExecStart", settings)
        daemon = subprocess.Popen(start, env=env(NOTIFY_SOCKET=address))  # the main process
        try:
            assert "READY=1" in receive(sock)
            assert (m.path / "a.txt").read_text() == "from the unit"
            with pytest.raises(OSError):
                (m.path / "b.txt").write_text("x")
            stop = subprocess.run(unit_command(unit, "ExecStop", settings), env=env())
            assert stop.returncode == 0
            assert "STOPPING=1" in receive(sock)
            assert daemon.wait(timeout=NOTIFY_WAIT_S) == 0 and not os.path.ismount(m.path)
        finally:
            m.teardown()
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()

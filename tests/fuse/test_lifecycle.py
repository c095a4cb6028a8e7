"""The daemon's life: refusals with clear errors, SIGTERM, umount by fusermount3, logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli.bench.s3server import S3Server
from fuse.mountinfo import alive, served
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted
from tests.ufs.stores import S3Store


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 60
    while alive(pid):
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.05)


def test_refusals_name_the_problem(local_mount: Mounted, tmp_path: Path) -> None:
    other = tmp_path / "other-mnt"
    other.mkdir()
    # A second daemon on the same home.
    busy = shoal("mount", local_mount.uri, str(other), home=local_mount.home, expect=4)
    assert "in use by process" in busy.stderr
    # A mountpoint already mounted.
    again = shoal("mount", local_mount.uri, str(local_mount.path), home=tmp_path / "h2", expect=1)
    assert "already a mount point" in again.stderr
    # A mountpoint that does not exist, a UFS that does not exist.
    missing = shoal("mount", local_mount.uri, str(tmp_path / "nope"), home=tmp_path / "h3",
                    expect=1)  # fmt: skip
    assert "does not exist" in missing.stderr
    no_ufs = shoal("mount", str(tmp_path / "no-ufs"), str(other), home=tmp_path / "h4", expect=1)
    assert "no-ufs" in no_ufs.stderr and not served(str(other))
    # Another store on a home that serves one.
    local_mount.umount()
    elsewhere = tmp_path / "ufs2"
    elsewhere.mkdir()
    wrong = shoal("mount", str(elsewhere), str(other), home=local_mount.home, expect=1)
    assert "already serves" in wrong.stderr
    # umount of something that is not a Shoal mount.
    assert "not a Shoal mount" in shoal("umount", str(other), expect=1).stderr


def test_missing_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    store = S3Store(s3_server)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    args = ["mount", f"s3://no-such-bucket-{os.getpid()}/x", str(mnt)]
    for key, value in store.options.items():
        args += ["-o", f"{key}={value}"]
    missing = shoal(*args, home=tmp_path / "home", expect=1)
    assert f"no-such-bucket-{os.getpid()}" in missing.stderr and not served(str(mnt))
    secret = store.options["secret_key"]
    for path in (tmp_path / "home").rglob("*"):  # the secret is nowhere but in credentials
        if path.is_file() and path.name != "credentials":
            assert secret not in path.read_text(errors="replace"), path


def test_sigterm_and_fusermount_stop_the_daemon_cleanly(local_mount: Mounted) -> None:
    (local_mount.path / "kept.txt").write_text("kept")
    pid = local_mount.pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    _wait_gone(pid)
    assert served(str(local_mount.path)) is None  # unmounted, not left dead
    journal = local_mount.home / "journal" / "checkpoints"
    assert any(journal.iterdir())  # a clean shutdown writes a checkpoint
    log = (local_mount.home / "logs" / "shoal.log").read_text()
    assert "signal 15: unmounting" in log and "unmounted" in log

    local_mount.mount()
    assert (local_mount.path / "kept.txt").read_text() == "kept"
    pid = local_mount.pid()
    assert pid is not None
    subprocess.run(["fusermount3", "-u", str(local_mount.path)], check=True)
    _wait_gone(pid)
    assert not (local_mount.home / "daemon.pid").exists()
    assert "fsck" not in shoal("fsck", home=local_mount.home).stderr


def test_a_home_path_with_commas_backslashes_and_spaces(tmp_path: Path) -> None:
    # The home is the mount's fsname, which libfuse splits at commas; mountinfo escapes the rest.
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    (ufs / "a.txt").write_text("hi")
    m = Mounted(tmp_path / "ho,me \\ x", str(ufs), tmp_path / "mnt")
    m.mount()
    try:
        assert (m.path / "a.txt").read_text() == "hi"
        assert served(str(m.path)) is True
        pid = m.pid()
        assert pid is not None
        m.umount()  # finds the daemon through the home that mountinfo names
        _wait_gone(pid)
        assert served(str(m.path)) is None
    finally:
        m.teardown()


def test_umount_after_a_kill_does_not_wait_for_the_process_that_took_the_pid(
    local_mount: Mounted,
) -> None:
    """The killed daemon's pid taken by another process (as a busy machine reuses pids): the
    dead mount is detached at once, that process neither waited for nor signalled."""
    local_mount.kill9()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        pid_file = local_mount.home / "daemon.pid"
        _pid, mountpoint, started = pid_file.read_text().split("\n")[:3]
        pid_file.write_text(f"{stranger.pid}\n{mountpoint}\n{started}\n")
        shoal("umount", str(local_mount.path), timeout=60)  # it waited for the stranger before
        assert served(str(local_mount.path)) is None and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()

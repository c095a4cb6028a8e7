"""How the daemon presents itself (issue 17): its title in `ps`, `shoal --version`, and what a
user other than root is told when FUSE is not theirs to use."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from tests.cli.shoal_cli import ROOT, env, shoal
from tests.fuse.mounting import Mounted
from tests.fuse.otheruser import NOBODY
from tests.homes import track


def test_the_daemon_is_titled_shoal_and_its_mount_point(local_mount: Mounted) -> None:
    pid = local_mount.pid()
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    title = cmdline.split(b"\0")[0].decode()
    assert title == f"shoal: serving {local_mount.path}", cmdline
    assert b"cli.main" not in cmdline and b"--options-fd" not in cmdline
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    assert comm == "shoal: serving"[:15]
    shown = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True
    )
    assert shown.stdout.strip() == f"shoal: serving {local_mount.path}"


def test_version_is_the_distributions() -> None:
    out = shoal("--version").stdout.strip()
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert out == f"shoal {tomllib.load(f)['project']['version']}"


def test_a_user_without_dev_fuse_is_told_what_to_change() -> None:
    if os.stat("/dev/fuse").st_mode & 0o006 == 0o006:
        pytest.skip("/dev/fuse is open to every user here: no refusal to explain")
    base = Path(tempfile.mkdtemp(prefix="shoal-nobody-"))  # a test's tmp_path is root's only
    try:
        base.chmod(0o755)
        for name in ("ufs", "mnt"):
            (base / name).mkdir()
        track(base / "home")
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(base)], check=True)
        argv = ["mount", str(base / "ufs"), str(base / "mnt")]
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "--home", str(base / "home"), *argv],
            cwd=ROOT, env=env(HOME=str(base)), user=NOBODY, group=NOBODY, extra_groups=[],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        (line,) = [x for x in done.stderr.splitlines() if x.startswith("shoal: error:")]
        assert "/dev/fuse" in line and "run shoal as root" in line and "fuse group" in line
        assert not os.path.ismount(base / "mnt")
    finally:
        if not os.path.ismount(base / "mnt"):  # never remove through a mount
            subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)

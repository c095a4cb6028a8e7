"""`shoal service`: the systemd unit it writes is one systemd accepts, and no secret goes in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.shoal_cli import shoal


def install(tmp_path: Path, *options: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    return shoal(
        "service", "install", "train", "s3://bucket/prefix", str(tmp_path / "mnt"),
        "--shoal", sys.executable,  # any program that exists: verify checks it does
        "--unit-dir", str(tmp_path / "units"), "--config-dir", str(tmp_path / "conf"),
        "--helper-dir", str(tmp_path / "sbin"), *options,
        home=tmp_path / "home", expect=expect,
    )  # fmt: skip


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    # Offline: no running systemd needed, only its unit search path under /usr/lib.
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_service_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    install(tmp_path, "-o", "endpoint=http://127.0.0.1:9000,secret_key_file=/root/k")
    template = tmp_path / "units" / "shoal@.service"
    text = template.read_text()
    assert "Type=notify" in text and " umount ${SHOAL_MOUNTPOINT}" in text
    instance = tmp_path / "units" / "shoal@train.service"  # verify checks instances
    shutil.copy(template, instance)
    done = verify(instance)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    # The same check refuses a broken unit: it is not a check that cannot fail.
    broken = tmp_path / "units" / "shoal@broken.service"
    broken.write_text(text.replace(sys.executable, "/nonexistent/shoal"))
    assert verify(broken).returncode != 0


def test_service_install_writes_instance_settings_without_secrets(tmp_path: Path) -> None:
    install(tmp_path, "-o", "secret_key_file=/root/k", "-o", "ro")
    settings = (tmp_path / "conf" / "train.env").read_text().splitlines()
    assert f"SHOAL_HOME={tmp_path / 'home'}" in settings
    assert "SHOAL_STORE=s3://bucket/prefix" in settings
    assert "SHOAL_OPTIONS=-o secret_key_file=/root/k -o ro" in settings
    assert (tmp_path / "conf" / "train.env").stat().st_mode & 0o777 == 0o600


def test_service_install_refuses_a_secret_by_value(tmp_path: Path) -> None:
    done = install(tmp_path, "-o", "secret_key=hunter2", expect=2)
    assert "secret_key_file=PATH" in done.stderr and "hunter2" not in done.stderr
    assert not (tmp_path / "conf").exists() and not (tmp_path / "units").exists()


def test_service_unit_prints_the_template() -> None:
    out = shoal("service", "unit", "--shoal", "/usr/bin/shoal").stdout
    assert "ExecStart=/usr/bin/shoal mount --foreground" in out
    assert "EnvironmentFile=/etc/shoal/%i.env" in out


def test_service_install_links_the_mount_helpers_beside_shoal(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("shoal", "mount.shoal", "mount.fuse.shoal", "umount.fuse.shoal"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "sbin").mkdir()
    install(tmp_path, "--shoal", str(bin_dir / "shoal"))
    for name in ("mount.shoal", "mount.fuse.shoal", "umount.fuse.shoal"):
        assert os.readlink(tmp_path / "sbin" / name) == str(bin_dir / name)

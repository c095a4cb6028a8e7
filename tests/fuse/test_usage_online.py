"""`shoal fs du|count|checksum` on a home a daemon serves: run through its admin channel, with
paths inside the mountpoint, as a user types them beside a training job."""

from __future__ import annotations

import hashlib
import os

from tests.cli.shoal_cli import env, shoal
from tests.fuse.mounting import Mounted


def test_usage_commands_through_the_daemon(any_mount: Mounted) -> None:
    store = any_mount.store  # type: ignore[attr-defined]
    data = os.urandom(2 * (1 << 20) + 99)
    store.put("train/c0/img.bin", data)
    store.put("train/c1/img.bin", b"x" * 10)
    mnt, no_home = any_mount.path, env()
    sample = str(mnt / "train" / "c0" / "img.bin")

    du = shoal("fs", "du", str(mnt / "train"), env=no_home).stdout.splitlines()
    assert [line.split()[-1] for line in du[1:]] == ["/train/c0/img.bin", "/train/c1/img.bin"]
    assert du[1].split()[:3] == [str(len(data)), "0", "(0%)"]
    checksum = shoal("fs", "checksum", sample, env=no_home).stdout
    assert checksum == f"md5sum: {hashlib.md5(data).hexdigest()}\n"
    assert (mnt / "train" / "c0" / "img.bin").read_bytes() == data  # the same bytes as served
    du = shoal("fs", "du", sample, env=no_home).stdout.splitlines()
    assert du[1].split() == [str(len(data)), str(len(data)), "(100%)", "/train/c0/img.bin"]
    count = shoal("fs", "count", str(mnt / "train"), env=no_home).stdout.splitlines()
    assert count[1].split() == ["2", "3", str(len(data) + 10)]
    # It ran in the daemon: its log names the command (a home opened here would be refused).
    log = (any_mount.home / "logs" / "shoal.log").read_text()
    assert "admin channel: shoal fs checksum" in log and "admin channel: shoal fs count" in log

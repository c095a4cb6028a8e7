"""`shoal report` as a person reads it: human sizes, hit ratio, the mounts, the daemon, and what
the kernel served without asking Shoal (issue 17, defect 7)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.cli.shoal_cli import shoal
from tests.cli.terminal import shoal_on_terminal
from tests.fuse.mounting import Mounted


def test_report_names_the_daemon_its_mounts_and_what_the_kernel_served(
    local_mount: Mounted,
) -> None:
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    for i in range(3):
        (ufs / f"shard{i}.bin").write_bytes(os.urandom(3 << 20))
    for _ in range(2):  # two full passes: the second is the kernel's page cache's
        for i in range(3):
            (local_mount.path / f"shard{i}.bin").read_bytes()

    code, screen = shoal_on_terminal("report", "--home", str(local_mount.home))
    assert code == 0, screen
    assert f"pid {local_mount.pid()}, up " in screen, screen
    assert f"mounted  at {local_mount.path}" in screen
    assert f"/ <- {ufs}" in screen  # the store behind the namespace's root
    assert re.search(r"\d+\.\d MiB read from stores", screen), screen  # 9 MiB, not 9,437,184
    assert re.search(r"hit ratio \d+\.\d%", screen), screen
    assert "6 file opens" in screen  # both passes opened every file...
    assert "page cache" in screen  # ...and the note says why the second read nothing

    raw = json.loads(shoal("report", "--json", home=local_mount.home).stdout)
    assert raw["ufs_bytes_read"] == 9 << 20  # raw numbers for programs
    assert raw["daemon"]["pid"] == local_mount.pid() and raw["daemon"]["uptime_s"] > 0
    assert raw["mountpoints"] == [str(local_mount.path)]
    assert raw["opens"] == 6 and raw["block_reads"] == raw["cache_hits"] + raw["cache_misses"]


def test_report_shows_store_uris_without_their_secrets() -> None:
    from cli.report_cmd import without_secrets  # here: the module is new with the fix

    assert without_secrets("s3://AKIA:s3cr3t@bucket/data?token=x") == "s3://bucket/data"
    assert without_secrets("/srv/data") == "/srv/data"

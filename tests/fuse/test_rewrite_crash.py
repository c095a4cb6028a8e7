"""The issue's case through a real mount: a file written and fsynced, then appended to by a
large amount, and the daemon killed (kill -9) while the close stages the new content. After
`shoal mount` again the file has its acknowledged content exactly (or, had the close finished,
the new one whole): never an empty or half file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import default_tiers
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore

MIB = 1 << 20
APPENDED = 256  # MiB

APPENDER = r"""
import sys
with open(sys.argv[1], "ab") as f:
    for _ in range(int(sys.argv[2])):
        f.write(b"N" * (1 << 20))
    print("WRITTEN", flush=True)
# the close hands the new content to the daemon, which stages it
"""


def blocks_of_version(home: Path, version: int) -> list[str]:
    found = []
    for tier in default_tiers(str(home)):
        for path in tier.paths:
            for _root, _dirs, files in os.walk(path):
                found += [f for f in files if f.startswith(f"{version}-") and f.endswith(".blk")]
    return found


@pytest.mark.parametrize("write_type", ["MUST_CACHE", "ASYNC_THROUGH"])
def test_kill9_while_an_append_is_staged(tmp_path: Path, write_type: str) -> None:
    store = LocalStore(tmp_path / "ufs")
    old = hashlib.sha256(b"old").digest() * (MIB // 32)
    with mounted(store, tmp_path, f"write_type={write_type}") as m:
        path = m.path / "f"
        with open(path, "wb") as f:
            f.write(old)
            f.flush()
            os.fsync(f.fileno())  # acknowledged
        # Created empty, then its first content committed: it is at version 1; the append
        # stages version 2.
        assert blocks_of_version(m.home, 1) and not blocks_of_version(m.home, 2)
        writer = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(path), str(APPENDED)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "WRITTEN"
        deadline = time.monotonic() + 120  # a guard against a hang, not a measurement
        while not blocks_of_version(m.home, 2) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert blocks_of_version(m.home, 2), "the append's close never staged a block"
        m.kill9()  # the daemon, while it stages the appended content
        writer.kill()
        writer.communicate()

        m.mount(f"write_type={write_type}")  # recovers from the journal
        data = path.read_bytes()
        assert data in (old, old + b"N" * (APPENDED * MIB)), (
            f"{len(data)} bytes: neither the acknowledged content nor the new one whole"
        )
        m.umount()
        report = shoal("fsck", home=m.home)
        assert "clean" in report.stdout, report.stdout
        assert not blocks_of_version(m.home, 2) or len(data) > MIB  # no staged leftovers

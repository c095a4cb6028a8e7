"""kill -9 of the daemon in the middle of a workload: after `shoal mount` again, every file
whose close (or fsync) returned is there, intact, and `shoal fsck` finds nothing wrong."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore

WRITER = r"""
import hashlib, os, sys
root = sys.argv[1]
n = 0
while True:
    d = os.path.join(root, f"dir{n // 20:03d}")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"f{n:05d}.bin")
    seed = hashlib.sha256(path.encode()).digest()
    data = (seed * (1 + (n * 7919) % 9000))[: 100 + (n * 7919) % 300_000]
    with open(path, "wb") as f:
        f.write(data)
        if n % 5 == 0:
            f.flush()
            os.fsync(f.fileno())
    if n % 7 == 0:  # rewrite an earlier file in place: a new version, same name
        with open(path, "r+b") as f:
            f.seek(len(data) // 2)
            f.write(b"patched")
        data = data[: len(data) // 2] + b"patched" + data[len(data) // 2 + 7 :]
    print(path, hashlib.sha256(data).hexdigest(), len(data), flush=True)
    n += 1
"""


@pytest.mark.parametrize("write_type", ["THROUGH", "ASYNC_THROUGH"])
def test_kill9_mid_workload(tmp_path: Path, write_type: str) -> None:
    store = LocalStore(tmp_path / "ufs")
    with mounted(store, tmp_path, f"write_type={write_type}") as m:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(m.path / "work")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        time.sleep(3)
        m.kill9()  # the daemon, mid-write
        writer.kill()
        out, _ = writer.communicate(timeout=30)
        acked = [line.split() for line in out.splitlines() if line.count(" ") == 2]
        assert len(acked) > 20, "the workload barely ran"

        m.mount(f"write_type={write_type}")  # clears the dead mount, recovers from the journal
        for path, digest, size in acked:
            data = Path(path).read_bytes()
            assert len(data) == int(size) and hashlib.sha256(data).hexdigest() == digest, path
        m.umount()
        if write_type == "THROUGH":  # acknowledged means in the UFS too
            for path, digest, _size in acked:
                rel = str(Path(path).relative_to(m.path))
                assert hashlib.sha256(store.get(rel)).hexdigest() == digest, rel
        report = shoal("fsck", home=m.home)
        assert "clean" in report.stdout

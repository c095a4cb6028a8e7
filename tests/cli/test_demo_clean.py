"""`bash scripts/demo.sh --clean`: the demo's cleanup in one command (issue 17, README). It
must leave nothing of a demo run, even one killed mid-way with its mount up and its MEM tier
(RAM, on /dev/shm) full, and nothing else may go."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.config import default_tiers
from fuse.mountinfo import served
from tests.cli.shoal_cli import ROOT, env, shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore


def test_demo_clean_removes_an_interrupted_demo_and_its_ram(tmp_path: Path) -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    # Without --clean the script would run the whole demo (and install): not in a test.
    assert "--clean" in demo, "scripts/demo.sh has no --clean"
    work = tmp_path / "shoal-demo.Ab3xYz"  # as the demo names its directory (mktemp)
    work.mkdir()
    store = LocalStore(work / "ufs")
    store.put("train/n0/img_0000.JPEG", os.urandom(110_000))
    other = tmp_path / "shoal-demo-notes"  # not a demo's directory: it stays
    other.mkdir()
    with mounted(store, work) as m:
        assert (m.path / "train/n0/img_0000.JPEG").read_bytes()
        shoal("report", "--idle", home=m.home)  # the storer has put its block in MEM
        m.kill9()  # the demo interrupted the hard way: mount up, daemon gone, RAM held
        mem = Path(default_tiers(str(m.home))[0].paths[0])
        assert mem.is_dir() and any(mem.rglob("*"))

        shell_bin = tmp_path / "bin"  # `shoal` as the demo's .venv would have it
        shell_bin.mkdir()
        (shell_bin / "shoal").write_text(f'#!/bin/sh\nexec {sys.executable} -m cli.main "$@"\n')
        (shell_bin / "shoal").chmod(0o755)
        path = f"{shell_bin}:{os.environ['PATH']}"
        done = subprocess.run(
            ["bash", "scripts/demo.sh", "--clean"],
            cwd=ROOT,
            env=env(TMPDIR=str(tmp_path), PATH=path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == f"removed {work}", done.stdout + done.stderr
        assert served(str(m.path)) is None  # unmounted
        assert not mem.exists()  # the RAM is given back
        assert not work.exists()
    assert other.is_dir()

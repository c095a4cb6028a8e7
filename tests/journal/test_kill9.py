"""A real process appending to the journal from several threads is killed with SIGKILL three
times; after each restart every operation it acknowledged is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.engine import Engine
from tests.cli.shoal_cli import ROOT, env, shoal

WRITER = Path(__file__).with_name("kill9_writer.py")
THREADS = 8
ROUNDS = 3
LINES_PER_ROUND = 3000
# Small segments and frequent checkpoints, so kills also land in rotations and checkpoints.
CONFIG = "[journal]\nsegment_size = 65536\ncheckpoint_every = 1500\n"


def run_and_kill(home: Path) -> list[str]:
    """Starts the writer, lets it acknowledge LINES_PER_ROUND creates, kills it, and returns
    every path it acknowledged (complete lines only: a cut line names no path for sure)."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(home), str(THREADS)],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while len(lines) < LINES_PER_ROUND:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    assert len(lines) == LINES_PER_ROUND, f"the writer stopped early:\n{err}"
    assert err == ""
    lines += rest.splitlines(keepends=True)
    return [line[:-1] for line in lines if line.endswith("\n")]


def existing_files(home: Path) -> set[str]:
    engine = Engine.open_home(str(home))
    try:
        out = set()
        for folder in engine.ns.listdir("/"):
            for child in engine.ns.listdir(f"/{folder.name}"):
                out.add(f"/{folder.name}/{child.name}")
        return out
    finally:
        engine.close()  # with a final checkpoint: the next round appends after one


def test_every_acknowledged_create_survives_kill_9(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text(CONFIG)
    acknowledged: list[str] = []
    for _ in range(ROUNDS):
        acked = run_and_kill(tmp_path)
        assert len(set(acked)) == len(acked)
        acknowledged += acked
        present = existing_files(tmp_path)
        missing = [p for p in acknowledged if p not in present]
        assert not missing, f"{len(missing)} acknowledged creates lost, e.g. {missing[:5]}"
        # Each thread creates its files in order and waits for each: what survived is, per
        # thread, an unbroken run f0..fN.
        for i in range(THREADS):
            ns = sorted(int(p.rsplit("/f", 1)[1]) for p in present if p.startswith(f"/t{i}/"))
            assert ns == list(range(len(ns)))
    assert len(set(acknowledged)) == len(acknowledged)  # later rounds continued, never redid
    shoal("journal", "verify", home=tmp_path)

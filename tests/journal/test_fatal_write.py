"""A failed journal write is fatal: the process stops with status 75 before acknowledging the
mutation, and the next start recovers everything acknowledged before it."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path

from engine.engine import Engine
from journal.writer import EXIT_JOURNAL_FAILED

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import errno, logging, sys
    from engine.engine import Engine
    from journal import writer

    logging.basicConfig(level=logging.INFO)
    engine = Engine.open_home(sys.argv[1])
    for i in range(5):
        engine.ns.create(f"/ok{i}")
        print(f"ACK /ok{i}", flush=True)
    real_write = writer.SegmentWriter.write

    def failing_write(self, data, first_seq):
        raise OSError(errno.EIO, "Input/output error (injected)")

    writer.SegmentWriter.write = failing_write
    engine.ns.create("/lost")
    print("ACK /lost", flush=True)  # must never be reached
    """
)


def test_a_failed_write_stops_the_process_before_acknowledging(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(home)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == EXIT_JOURNAL_FAILED, proc.stderr
    acked = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ACK")]
    assert acked == [f"/ok{i}" for i in range(5)]
    assert "journal write failed" in proc.stderr
    assert f"[Errno {errno.EIO}]" in proc.stderr
    engine = Engine.open_home(str(home))
    try:
        names = sorted(n.name for n in engine.ns.listdir("/"))
    finally:
        engine.close(checkpoint=False)
    assert names == [f"ok{i}" for i in range(5)]

"""The writer process's own fsyncs of the log (journal.durability = "commit_interval"): the
last sync of a full segment before the next one starts, and the sync after preallocating
zeros. Each makes every record written so far durable, so the cache tiers' file systems must
be synced first (journal/datasync.py), as before the regular syncs: start-up cuts the log
only within the newest segment's last write (journal/datacut.py), and an entry made durable
there earlier, or in an older segment, is never judged.

Right after a block cached unsynced (MUST_CACHE), operations go on until the segment switches
or its preallocated end is filled; strace shows whether the tier's syncfs came before that
fsync of the log. The power loss right after it keeps the log as written (the switch, or the
fill's fsync, and the page of the write after it) and loses the block unless a syncfs covered
it: start-up must never keep a committed file whose bytes are gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.engine import Engine
from tests.homes import write_config

ROOT = Path(__file__).resolve().parents[2]
BODY = b"o" * 5000

WRITER = """
import io, json, os, shutil, sys
from dataclasses import replace
from pathlib import Path
from engine.config import load_config
from engine.engine import Engine
from journal.storage import OsStorage

home, ufs, tier, image, what = sys.argv[1:6]
config = load_config(home, None, None)
switch = {"segment": dict(segment_size=1 << 14, preallocate=0), "fill": dict(preallocate=4096)}
options = replace(config.journal, checkpoint_every=0, **switch[what])
engine = Engine(OsStorage(home), options, config=replace(config, journal=options))
assert engine.journal.orders_data, "blocks are fsynced one by one: nothing to test"
engine.fs.makedirs("/m")
engine.mounts.mount("/m", "file://" + ufs, {})
body = b"o" * 5000


def where():
    segments = sorted(Path(home, "journal").glob("log-*.seg"))
    return len(segments) if what == "segment" else segments[-1].stat().st_size


for attempt in range(200):
    engine.fs.make_durable()
    before, durable_blocks = where(), sorted(str(p) for p in Path(tier).rglob("*.blk"))
    name = f"/m/f{attempt}"
    print("WRITTEN", flush=True)
    engine.fs.write_file(name, io.BytesIO(body), write_type="MUST_CACHE")
    if where() != before:
        continue  # the switch came among its own entries: again
    i = 0
    while where() == before:
        engine.ns.mkdir(f"/d{attempt}-{i}")
        i += 1
    break
else:
    raise SystemExit("never switched")
print("SWITCHED", flush=True)
shutil.copytree(home, Path(image, "home"))  # every acknowledged entry is in the log already
shutil.copytree(tier, Path(image, "ssd"))
Path(image, "info.json").write_text(json.dumps({"name": name, "durable": durable_blocks}))
os._exit(0)  # as the power goes: nothing more synced
"""


def _configure(home: Path, tier: Path) -> str:
    journal = '[journal]\ndurability = "commit_interval"\ncommit_interval_ms = 60000'
    return write_config(home, journal, block_size=65536, tiers=[("SSD", tier, "8MiB")])


def _log_synced_before_data(trace: Path, journal: Path) -> bool:
    """Whether, after the block was written, an fsync of a log segment came before any syncfs
    (strace -y names each descriptor's file)."""
    lines = trace.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if '"WRITTEN' in line)
    end = next(i for i, line in enumerate(lines) if '"SWITCHED' in line)
    for line in lines[start:end]:
        if " syncfs(" in line:
            return False
        if " fsync(" in line and f"{journal}/log-" in line:
            return True
    raise AssertionError("no sync of the log before the switch:\n" + "\n".join(lines[start:end]))


@pytest.mark.parametrize("what", ["segment", "fill"])
def test_a_log_sync_of_the_writer_process_syncs_the_tiers_first(tmp_path: Path, what: str) -> None:
    strace = shutil.which("strace")
    assert strace is not None, "strace is needed to watch the writer process's system calls"
    home, tier, ufs, image = (tmp_path / d for d in ("home", "ssd", "ufs", "image"))
    for d in (home, ufs):
        d.mkdir()
    trace, script = tmp_path / "trace", tmp_path / "writer.py"
    script.write_text(WRITER)
    subprocess.run(
        [strace, "-f", "-y", "-o", str(trace), "-e", "trace=syncfs,fsync,write",
         "-e", "signal=none", sys.executable, str(script), _configure(home, tier), str(ufs),
         str(tier), str(image), what],
        check=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    info = json.loads((image / "info.json").read_text())
    unsynced = _log_synced_before_data(trace, (home / "journal").resolve())
    if unsynced:  # the power loss takes the blocks no syncfs covered
        for block in (image / "ssd").rglob("*.blk"):
            if str(tier / block.relative_to(image / "ssd")) not in info["durable"]:
                block.unlink()
    engine = Engine.open_home(_configure(image / "home", image / "ssd"))
    try:
        got = engine.fs.read(info["name"], 0, 1 << 20)  # a file kept must have its bytes
    finally:
        engine.close(checkpoint=False)
    assert got == BODY
    assert not unsynced, "the log was synced before the tier's data it names"

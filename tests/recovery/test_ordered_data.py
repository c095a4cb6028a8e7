"""A power loss between a cached block's bytes and its entry (journal.durability =
"commit_interval", the writer process): blocks written through the cache (MUST_CACHE) get no
fsync of their own, the writer process syncs the tier's file system before the log
(journal/datasync.py), and start-up cuts the log before an entry whose block a power loss took
(journal/datacut.py, engine/cache/ordered.py).

Modelled on real files: after some operations made durable (a sync), more are acknowledged;
the power loss keeps the log up to any record past the sync and loses the block files written
after it (all of them, or one), as the kernel may write back a log page before a block's. Each
image must open, and what it serves must be the model after some operation between the last
durable one and the last issued: a prefix holding every durable operation. Without the cut,
a file whose content was committed comes back without its bytes."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

from engine.engine import Engine
from engine.errors import ShoalError
from journal.format import Record, ScanEnd, iter_records
from tests.cli.shoal_cli import shoal
from tests.homes import write_config

ROOT = Path(__file__).resolve().parents[2]
BEFORE = 6  # operations made durable by the sync
AFTER = 9  # acknowledged after it
View = tuple[tuple[str, ...], tuple[tuple[str, bytes], ...]]


def _configure(home: Path, tier: Path) -> str:
    # A long interval: nothing but the explicit sync makes the later entries durable.
    journal = '[journal]\ndurability = "commit_interval"\ncommit_interval_ms = 60000'
    return write_config(home, journal, block_size=65536, tiers=[("SSD", tier, "8MiB")])


def _segment(home: Path) -> Path:
    (segment,) = sorted(home.glob("journal/log-*.seg"))
    return segment


def _record_ends(path: Path) -> list[int]:
    ends, last = [], 0
    for rec in iter_records(path.read_bytes(), 1):
        if isinstance(rec, ScanEnd):
            break
        assert isinstance(rec, Record)
        if last:
            ends.append(rec.offset)
        last = rec.offset
    *_rest, end = iter_records(path.read_bytes(), 1)
    assert isinstance(end, ScanEnd)
    return ends + [end.offset]


def _view(engine: Engine) -> View:
    fs = engine.fs
    dirs = tuple(sorted(n.name for n in engine.ns.listdir("/") if n.name != "m"))
    files = []
    for node in sorted(engine.ns.listdir("/m"), key=lambda n: n.name):
        try:
            data = fs.read(f"/m/{node.name}", 0, 1 << 20)
        except ShoalError as exc:  # a committed file without its bytes
            data = f"lost: {exc}".encode()
        files.append((node.name, data))
    return dirs, tuple(files)


def _op(engine: Engine, i: int) -> None:
    """A new empty file, its content written (two blocks), a directory (outside the mount)."""
    if i % 3 == 2:
        engine.ns.mkdir(f"/d{i}")
        return
    body = b"" if i % 3 == 0 else bytes([i]) * (70_000 + i)
    name = f"f{i - i % 3}"
    engine.fs.write_file(f"/m/{name}", io.BytesIO(body), write_type="MUST_CACHE")


def _blocks(tier: Path) -> set[Path]:
    return {p.relative_to(tier) for p in tier.rglob("*.blk")}


def test_power_loss_between_block_and_entry_leaves_a_prefix(tmp_path: Path) -> None:
    home, tier, ufs = tmp_path / "home", tmp_path / "ssd", tmp_path / "ufs"
    for d in (home, ufs):
        d.mkdir()
    engine = Engine.open_home(_configure(home, tier))
    try:
        assert engine.journal.orders_data, "blocks are fsynced one by one: nothing to test"
        engine.fs.makedirs("/m")
        engine.mounts.mount("/m", f"file://{ufs}", {})
        views = [_view(engine)]
        for i in range(BEFORE + AFTER):
            _op(engine, i)
            views.append(_view(engine))
            if i + 1 == BEFORE:
                engine.fs.make_durable()
                synced_at = _record_ends(_segment(home))[-1]
                durable_blocks = _blocks(tier)
        assert engine.journal.durable_seq < engine.journal.last_seq, "synced before it was asked"
        image = tmp_path / "written"
        shutil.copytree(home, image / "home")  # every acknowledged entry is in the log already
        shutil.copytree(tier, image / "ssd")
    finally:
        engine.close()
    later = sorted(_blocks(image / "ssd") - durable_blocks)
    assert len(later) >= 4
    ends = [e for e in _record_ends(_segment(image / "home")) if e >= synced_at]
    # The log kept up to each record past the sync with every later block lost; the whole log
    # kept with one later block lost.
    cases = [(end, later) for end in ends] + [(ends[-1], [one]) for one in later]
    for end, lost in cases:
        got = _recovered(tmp_path / "power-loss", image, end, lost)
        assert got in views[BEFORE:], (end, lost, got)
    assert len(cases) > 20


def _recovered(at: Path, image: Path, end: int, lost: list[Path]) -> View:
    """The image after a power loss that kept the log up to ``end`` and lost ``lost``."""
    shutil.rmtree(at, ignore_errors=True)
    shutil.copytree(image, at)
    home, tier = at / "home", at / "ssd"
    with open(_segment(home), "r+b") as f:
        f.truncate(end)
    for rel in lost:
        (tier / rel).unlink()
    engine = Engine.open_home(_configure(home, tier))
    try:
        return _view(engine)
    finally:
        engine.close(checkpoint=False)


def _open_with_mount(tmp_path: Path) -> tuple[Path, Path, Engine]:
    """(home, its SSD tier, its engine open with a local store mounted at /m)."""
    home, tier, ufs = tmp_path / "home", tmp_path / "ssd", tmp_path / "ufs"
    for d in (home, ufs):
        d.mkdir()
    engine = Engine.open_home(_configure(home, tier))
    try:
        engine.fs.makedirs("/m")
        engine.mounts.mount("/m", f"file://{ufs}", {})
    except BaseException:
        engine.close(checkpoint=False)
        raise
    return home, tier, engine


def test_a_block_damaged_after_it_was_durable_cuts_nothing(tmp_path: Path) -> None:
    """A block whose entry was synced (a write start follows it in the log) was on disk when
    the log was: if its bytes are wrong now, the disk damaged them later, and cutting the log
    there would drop durable operations. Every operation stays; only that file's read fails."""
    home, tier, engine = _open_with_mount(tmp_path)
    try:
        for i in range(BEFORE):
            _op(engine, i)
        engine.fs.make_durable()
        durable_blocks = _blocks(tier)
        for i in range(BEFORE, BEFORE + AFTER):
            _op(engine, i)
        engine.fs.make_durable()
        expected = _view(engine)
    finally:
        engine.close(checkpoint=False)
    damaged = sorted(durable_blocks)[0]
    size = (tier / damaged).stat().st_size
    (tier / damaged).write_bytes(b"\xee" * size)
    engine = Engine.open_home(_configure(home, tier))
    try:
        dirs, files = _view(engine)
    finally:
        engine.close(checkpoint=False)
    assert dirs == expected[0]
    assert [name for name, _ in files] == [name for name, _ in expected[1]]
    lost = [
        name for (name, data), (_, want) in zip(files, expected[1], strict=True) if data != want
    ]
    assert len(lost) == 1 and dict(files)[lost[0]].startswith(b"lost:"), files


def test_fsck_ordered_data_names_an_only_copy_whose_bytes_changed(tmp_path: Path) -> None:
    home, tier, engine = _open_with_mount(tmp_path)
    try:
        engine.fs.write_file("/m/only", io.BytesIO(b"a" * 5000), write_type="MUST_CACHE")
        engine.fs.write_file("/m/kept", io.BytesIO(b"k" * 5000), write_type="THROUGH")
    finally:
        engine.close()
    assert "ok    ordered-data" in shoal("fsck", home=home).stdout
    (block,) = _blocks(tier)
    (tier / block).write_bytes(b"b" * 5000)  # same length: only the checksum tells
    out = shoal("fsck", home=home, expect=None).stdout
    assert "FAIL  ordered-data" in out
    assert "/m/only (inode" in out and "block 0 is not on disk as its entry says" in out


WRITER = """
import io, sys
from engine.engine import Engine
engine = Engine.open_home(sys.argv[1])
engine.fs.makedirs("/m")
engine.mounts.mount("/m", "file://" + sys.argv[2], {})
engine.fs.write_file("/m/f", io.BytesIO(b"x" * 5000), write_type="MUST_CACHE")
print("WRITTEN", flush=True)
engine.fs.make_durable()
engine.close()
"""


def _joined(lines: list[str]) -> list[str]:
    """strace -f's lines with each call cut by another thread's ("syncfs(5 <unfinished ...>",
    later "<... syncfs resumed>) = 0") made whole again, where the call began."""
    out: list[str] = []
    open_at: dict[str, int] = {}  # pid -> index in out of its unfinished call
    for line in lines:
        pid, _, rest = line.partition(" ")
        if line.endswith("<unfinished ...>"):
            open_at[pid] = len(out)
            out.append(line.removesuffix("<unfinished ...>"))
        elif rest.startswith("<... ") and pid in open_at:
            out[open_at.pop(pid)] += rest.split(" resumed>", 1)[1]
        else:
            out.append(line)
    return out


def test_the_writer_process_syncs_the_tier_before_the_log(tmp_path: Path) -> None:
    """The system calls themselves (strace): after a block written unsynced, the writer
    process's next sync of the log comes after a syncfs of the tier's file system. Without it
    the log could be durable while the block it names is not: no start could tell."""
    strace = shutil.which("strace")
    assert strace is not None, "strace is needed to watch the writer process's system calls"
    home, tier, ufs = tmp_path / "home", tmp_path / "ssd", tmp_path / "ufs"
    for d in (home, ufs):
        d.mkdir()
    trace = tmp_path / "trace"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    subprocess.run(
        [strace, "-f", "-o", str(trace), "-e", "trace=syncfs,fsync,fdatasync,write",
         "-e", "signal=none", sys.executable, str(script), _configure(home, tier), str(ufs)],
        check=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    lines = _joined(trace.read_text().splitlines())
    after = lines[next(i for i, line in enumerate(lines) if '"WRITTEN' in line) :]
    syncfs = [line for line in after if " syncfs(" in line and "= 0" in line]
    assert syncfs, "no syncfs of the tier after the block was written:\n" + "\n".join(after)
    child = syncfs[0].split()[0]
    calls = [line.split()[1].split("(")[0] for line in after if line.split()[0] == child]
    syncs = [c for c in calls if c in ("syncfs", "fsync", "fdatasync")]
    assert syncs[:2] == ["syncfs", "fsync"], syncs  # the tier, then the log

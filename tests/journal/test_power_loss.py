"""A power loss with journal.durability = "commit_interval": the real writer process writes
entries to the log file without syncing them one by one, so a power loss may keep any part of
what it wrote after the last sync. Modelled on the real log file: cut at every byte offset past
the last durability point (a sync, as fsync and fsyncdir make; every record boundary and the
bytes around it, the header's end, the middle of each record), or with a page-sized hole in
that region while later bytes survive (pages of several unsynced writes reach the disk in any
order). Each image must open (never "damage in the log"), and its state must be the state after
some operation between the last one made durable and the last one issued: a prefix of the
acknowledged operations containing every durable one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.snapshot import digest
from journal.format import Record, ScanEnd, iter_records
from journal.journal import JournalOptions
from journal.storage import OsStorage

BEFORE = 12  # operations made durable by the sync
AFTER = 24  # operations acknowledged after it (a few per batch: one caller)
HOLE = 64


def _options(preallocate: int) -> JournalOptions:
    # A long interval: nothing but the explicit sync makes the later entries durable.
    return JournalOptions(
        checkpoint_every=0,
        durability="commit_interval",
        commit_interval_ms=1000.0,
        preallocate=preallocate,
    )


def _segment(home: Path) -> Path:
    (segment,) = sorted(home.glob("journal/log-*.seg"))
    return segment


def _record_end(path: Path) -> int:
    """Where the segment's last valid record ends."""
    *_records, end = iter_records(path.read_bytes(), 1)
    assert isinstance(end, ScanEnd) and end.clean
    return end.offset


def _workload(home: Path, preallocate: int) -> tuple[list[str], int, int, Path]:
    """Runs the operations; the digests after each, how many were durable, the log's end at
    the sync, and a copy of the home as a kill at the end would leave it (all written)."""
    engine = Engine(OsStorage(str(home)), _options(preallocate))
    digests = [digest(engine.state)]
    ns = engine.ns
    for i in range(BEFORE + AFTER):
        if i % 3 == 0:
            ns.mkdir(f"/d{i}")
        else:
            ns.create(f"/d{i - i % 3}/f{i}")
        digests.append(digest(engine.state))
        if i + 1 == BEFORE:
            engine.fs.make_durable()
            synced_at = _record_end(_segment(home))
    assert engine.journal.durable_seq < engine.journal.last_seq, "synced before it was asked"
    written = home.parent / f"{home.name}-written"
    shutil.copytree(home, written)  # every acknowledged entry is in the log file already
    engine.close(checkpoint=False)
    return digests, BEFORE, synced_at, written


def _recovered(image: Path) -> str:
    options = JournalOptions(checkpoint_every=0, group_commit=False)
    engine = Engine(OsStorage(str(image)), options)
    try:
        return digest(engine.state)
    finally:
        engine.close(checkpoint=False)


def _offsets(path: Path, start: int) -> list[int]:
    """Every record boundary after ``start`` and the bytes either side of it, and a few inside
    each record (a cut at each byte of 24 records costs minutes of start-ups)."""
    ends = [r.offset for r in iter_records(path.read_bytes(), 1) if isinstance(r, Record)]
    ends.append(_record_end(path))
    out = {start}
    for a, b in zip(ends, ends[1:], strict=False):
        if b > start:
            out.update(
                o for o in (a - 1, a, a + 1, a + 19, a + 20, (a + b) // 2, b - 1) if o >= start
            )
    return sorted(out)


def _check(image: Path, digests: list[str], durable: int, what: str) -> int:
    got = _recovered(image)
    assert got in digests[durable:], f"{what}: not a state between the sync and the last operation"
    return digests.index(got)


@pytest.mark.parametrize("preallocate", [0, 1 << 20])
def test_a_power_loss_after_a_sync_keeps_a_prefix_with_every_durable_operation(
    tmp_path: Path, preallocate: int
) -> None:
    home = tmp_path / "home"
    digests, durable, synced_at, written = _workload(home, preallocate)
    end = _record_end(_segment(written))
    assert synced_at < end
    # A kill -9 (everything written survives) loses nothing acknowledged.
    assert _check(written, digests, durable, "everything written") == len(digests) - 1
    image = tmp_path / "image"
    seen = set()
    for offset in _offsets(_segment(written), synced_at) + [end]:
        shutil.rmtree(image, ignore_errors=True)
        shutil.copytree(written, image)
        segment = _segment(image)
        data = segment.read_bytes()
        # Cut there: truncated (no preallocation) or zeros from there on (preallocated).
        segment.write_bytes(data[:offset] + bytes(len(data) - offset if preallocate else 0))
        seen.add(_check(image, digests, durable, f"cut at {offset}"))
    assert seen == set(range(durable, len(digests))), "some prefix was never recovered"


def test_a_hole_in_unsynced_writes_before_later_ones_is_a_torn_tail(tmp_path: Path) -> None:
    """Pages of an earlier unsynced write lost, a later write's kept: the log must open as a
    prefix (a torn tail), not be taken for damage to bytes that were once durable (which
    would leave a home that cannot be opened without a repair)."""
    home = tmp_path / "home"
    digests, durable, synced_at, written = _workload(home, 1 << 20)
    end = _record_end(_segment(written))
    image = tmp_path / "image"
    for offset in range(synced_at, end - HOLE, 29):
        shutil.rmtree(image, ignore_errors=True)
        shutil.copytree(written, image)
        segment = _segment(image)
        data = bytearray(segment.read_bytes())
        data[offset : offset + HOLE] = bytes(HOLE)
        segment.write_bytes(bytes(data))
        _check(image, digests, durable, f"a hole at {offset}")

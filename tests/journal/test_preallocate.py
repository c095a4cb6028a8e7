"""Preallocated segments on real files: commits are written over zeros filled ahead of the last
record, a restart continues at the last record (not at the file's end), and segments left with
a zero end by a rotation read back as clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.engine import Engine
from journal.format import ScanEnd, iter_records, parse_segment_header
from journal.journal import JournalOptions
from journal.storage import OsStorage

FILL = 4096


def open_engine(home: Path, writer: str, segment_size: int = 1 << 20) -> Engine:
    options = JournalOptions(
        writer=writer, checkpoint_every=0, segment_size=segment_size, preallocate=FILL
    )
    return Engine(OsStorage(str(home)), options)


def scan_ends(home: Path) -> list[tuple[ScanEnd, int]]:
    """Each segment's ScanEnd and record count."""
    out = []
    for path in sorted((home / "journal").glob("log-*.seg")):
        data = path.read_bytes()
        *records, end = iter_records(data, parse_segment_header(data))
        assert isinstance(end, ScanEnd)
        out.append((end, len(records)))
    return out


def names(engine: Engine) -> set[str]:
    return {node.name for node in engine.ns.listdir("/")}


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_commits_overwrite_the_zero_fill_and_a_restart_continues_after_the_last_record(
    tmp_path: Path, writer: str
) -> None:
    engine = open_engine(tmp_path, writer)
    for i in range(30):
        engine.ns.create(f"/a{i}")
    engine.close(checkpoint=False)
    [(end, count)] = scan_ends(tmp_path)
    # The file ends at the fill's boundary; the records end before it, zeros after them.
    assert end.clean and count == 30 and end.size == FILL and end.offset < FILL

    engine = open_engine(tmp_path, writer)
    for i in range(30):
        engine.ns.create(f"/b{i}")
    engine.close(checkpoint=False)
    [(end2, count2)] = scan_ends(tmp_path)
    # Written over the zeros, not after them (zeros before a record would be damage).
    assert end2.clean and count2 == count + 30 and end2.offset > end.offset
    assert end2.size == (end2.offset + FILL - 1) // FILL * FILL

    engine = open_engine(tmp_path, writer)
    assert names(engine) == {f"a{i}" for i in range(30)} | {f"b{i}" for i in range(30)}
    engine.close(checkpoint=False)


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_rotated_segments_with_zero_ends_read_back_clean(tmp_path: Path, writer: str) -> None:
    engine = open_engine(tmp_path, writer, segment_size=3 * FILL)
    for i in range(400):
        engine.ns.create(f"/f{i:03d}")
        if i in (50, 51):
            engine.checkpoint()  # leaves a segment with most of its fill unused
    engine.close(checkpoint=False)
    ends = scan_ends(tmp_path)
    assert len(ends) >= 3
    assert all(end.clean for end, _ in ends)
    # Rotation is by the records' size: no segment's file is past it by more than a batch.
    assert all(end.size <= 3 * FILL + 4096 for end, _ in ends[:-1])
    assert any(end.size - end.offset > FILL // 2 for end, _ in ends[:-1])

    engine = open_engine(tmp_path, writer, segment_size=3 * FILL)
    assert names(engine) == {f"f{i:03d}" for i in range(400)}
    engine.close(checkpoint=False)

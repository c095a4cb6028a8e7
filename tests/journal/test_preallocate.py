"""Preallocated segments on real files: commits are written over zeros filled ahead of the last
record, a restart continues at the last record (not at the file's end), and segments left with
a zero end by a rotation read back as clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.engine import Engine
from journal.format import ScanEnd, frame, iter_records, parse_segment_header
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


def two_writes(tmp_path: Path) -> tuple[Path, list[int]]:
    """A segment holding two writes of records 1-10 and 11-30, as the writer lays them out over
    its zero fill; also the offset of every record."""
    from journal.writer import SegmentWriter

    writer = SegmentWriter(OsStorage(str(tmp_path)), "", 1 << 20, None, 0, 0, preallocate=FILL)
    for first, last in ((1, 10), (11, 30)):
        writer.write(b"".join(frame(s, 2, bytes([s]) * 90) for s in range(first, last + 1)), first)
    writer.close()
    path = tmp_path / "log-00000000000000000001.seg"
    data = path.read_bytes()
    *records, end = iter_records(data, parse_segment_header(data))
    assert isinstance(end, ScanEnd) and end.clean and len(records) == 30
    return path, [r.offset for r in records]


def test_a_write_whose_pages_landed_out_of_order_is_a_torn_tail(tmp_path: Path) -> None:
    # Over zeros, a crash can keep a later page of the last write and lose an earlier one:
    # its surviving records follow zeros, yet nothing after them was ever acknowledged.
    path, offsets = two_writes(tmp_path)
    data = bytearray(path.read_bytes())
    data[offsets[10] : offsets[14]] = bytes(offsets[14] - offsets[10])  # records 11-14 lost
    *records, end = iter_records(bytes(data), 1)
    assert isinstance(end, ScanEnd) and end.torn and end.offset == offsets[10]
    assert len(records) == 10


def test_damage_before_a_later_write_is_corruption(tmp_path: Path) -> None:
    # The second write started only once the first was durable: its first record, flagged as a
    # write's start, proves the zeros in the first write are damage, not a torn write.
    path, offsets = two_writes(tmp_path)
    data = bytearray(path.read_bytes())
    data[offsets[3] : offsets[5]] = bytes(offsets[5] - offsets[3])
    *_, end = iter_records(bytes(data), 1)
    assert isinstance(end, ScanEnd) and not end.clean and not end.torn
    assert end.offset == offsets[3] and end.next_valid_offset == offsets[10]


def test_a_disk_too_full_to_zero_fill_still_takes_records() -> None:
    from journal.writer import SegmentWriter
    from recovery.crashsim import SimStorage

    sim = SimStorage()
    sim.makedirs("j")
    writer = SegmentWriter(sim, "j", 1 << 20, None, 0, 0, preallocate=FILL)
    seq = 1
    while writer.size + 200 <= writer.allocated or seq == 1:  # up to the first fill's end
        writer.write(frame(seq, 2, b"r" * 100), seq)
        seq += 1
    assert writer.allocated == FILL
    sim.fail_write_after(0)  # the next write, the zero fill, finds the disk full
    writer.write(frame(seq, 2, b"r" * 100), seq)  # appended instead; nothing fails
    assert sim.failures and writer.allocated == writer.size > FILL
    data = sim.read("j/log-00000000000000000001.seg")
    *records, end = iter_records(data, 1)
    assert isinstance(end, ScanEnd) and end.clean and len(records) == seq

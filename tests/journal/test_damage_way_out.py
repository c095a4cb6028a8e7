"""Damage that start-up used to cut silently or that repair had no way out of: a zeroed newest
segment, a newest segment lost together with the `seen` marker, damage in old segments only an
older checkpoint needs. Each is an error naming the file and what to run, and `shoal journal
repair --force` always offers a way out that keeps a copy of every file it changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.engine import Engine
from journal.format import ScanEnd, iter_records, parse_segment_header
from tests.cli.shoal_cli import checkpoints, record_offsets, segments, shoal
from tests.crashes import flip, journal_files, names, one_line


def build(home: Path, before: int, after: int, toml: str = "") -> tuple[list[str], list[str]]:
    """/b0.. created, a checkpoint (skipped when ``before`` is 0), then /a0.. created; the home
    closed without a final checkpoint. Each create is synced (as an fsync after it would), so
    every record starts a write that followed a sync: damage to any but the last is corruption,
    whatever journal.durability says (docs/journal.md). Returns both lists of paths."""
    home.mkdir(parents=True, exist_ok=True)
    if toml:
        (home / "shoal.toml").write_text(toml)
    engine = Engine.open_home(str(home))
    first = [f"/b{i}" for i in range(before)]
    second = [f"/a{i}" for i in range(after)]
    try:
        for path in first:
            engine.ns.create(path)
            engine.fs.make_durable()
        if before:
            engine.checkpoint()
        for path in second:
            engine.ns.create(path)
            engine.fs.make_durable()
    finally:
        engine.close(checkpoint=False)
    return first, second


def damage_records(segment: Path, *offsets: int) -> bytes:
    """Flips a byte inside each record of ``segment`` starting at ``offsets`` (so that its
    checksum no longer matches); returns the segment's bytes as they are now."""
    for offset in offsets:
        flip(segment, offset + 25)
    return segment.read_bytes()


def refused_then_forced(home: Path, would: str, did: str, problem: str = "") -> None:
    """`shoal journal verify` names the ``problem`` (when one is given), `shoal journal repair`
    refuses (exit 3) saying what a forced repair ``would`` do, and `repair --force` says what
    it ``did``."""
    if problem:
        proc = shoal("journal", "verify", home=home, expect=3)
        assert problem in proc.stdout
    proc = shoal("journal", "repair", home=home, expect=3)
    assert would in proc.stdout
    proc = shoal("journal", "repair", "--force", home=home)
    assert did in proc.stdout


# -- a zeroed newest segment (defect 5) ---------------------------------------------------------


@pytest.mark.parametrize("checkpointed", [True, False], ids=["after-checkpoint", "only-segment"])
def test_a_zeroed_newest_segment_is_an_error_not_a_torn_tail(
    tmp_path: Path, checkpointed: bool
) -> None:
    kept, lost = build(tmp_path, 6 if checkpointed else 0, 8)
    newest = segments(tmp_path)[-1]
    assert (tmp_path / "journal" / "seen").read_text().strip() == str(int(newest.name[4:24]))
    size = newest.stat().st_size
    newest.write_bytes(bytes(size))  # every byte of the acknowledged entries is gone
    rel = f"journal/{newest.name}"

    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    line = one_line(proc.stderr)
    assert f"{rel} at offset 0: the segment is all zeros ({size} bytes)" in line
    assert "shoal journal repair --force" in line
    assert newest.read_bytes() == bytes(size)  # start-up cut nothing

    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert f"problem: {rel} at offset 0: the segment is all zeros" in proc.stdout
    before = journal_files(tmp_path)
    proc = shoal("journal", "repair", home=tmp_path, expect=3)
    first = int(newest.name[4:24])
    assert f"a forced repair would lose: every entry from {first} on" in proc.stdout
    assert "refusing without --force" in proc.stdout
    assert journal_files(tmp_path) == before

    proc = shoal("journal", "repair", "--force", home=tmp_path)
    assert f"lost: every entry from {first} on" in proc.stdout
    assert (tmp_path / (rel + ".broken")).read_bytes() == bytes(size)
    assert names(tmp_path) == set(kept)
    shoal("journal", "verify", home=tmp_path)
    shoal("fs", "touch", "/new", home=tmp_path)
    assert names(tmp_path) == set(kept) | {"/new"}
    shoal("journal", "verify", home=tmp_path)


# -- the newest segment deleted with the `seen` marker (defect 6) ------------------------------


def test_newest_segment_deleted_with_the_seen_marker_is_found_by_the_checkpoint(
    tmp_path: Path,
) -> None:
    kept, lost = build(tmp_path, 5, 7)
    [ckpt] = checkpoints(tmp_path)
    newest = segments(tmp_path)[-1]
    seq = int(ckpt.name.split("-")[1])
    assert newest.name == f"log-{seq + 1:020d}.seg"
    newest.unlink()
    (tmp_path / "journal" / "seen").unlink()

    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    line = one_line(proc.stderr)
    assert f"segment {newest.name} is missing (checkpoint journal/checkpoints/{ckpt.name}" in line
    assert f"at entry {seq} was written after it was created" in line
    assert "shoal journal repair --force" in line

    refused_then_forced(
        tmp_path,
        problem=f"problem: {newest.name}: segment {newest.name} is missing",
        would=f"the missing segment {newest.name} (entries from {seq + 1} on) stays lost",
        did=f"started journal/{newest.name} after the checkpoint at entry {seq}",
    )
    assert names(tmp_path) == set(kept)
    shoal("journal", "verify", home=tmp_path)
    shoal("fs", "touch", "/new", home=tmp_path)
    assert names(tmp_path) == set(kept) | {"/new"}


# -- damage in an old segment (defect 6) --------------------------------------------------------


def _two_checkpoints(home: Path) -> tuple[set[str], list[Path], list[Path]]:
    """Checkpoints at two points, then more entries: segments [older, newer, newest]."""
    engine = Engine.open_home(str(home))
    try:
        for i in range(4):
            engine.ns.create(f"/x{i}")
        engine.checkpoint()
        for i in range(6):
            engine.ns.create(f"/y{i}")
        engine.checkpoint()
        engine.ns.rename("/x0", "/z")
        engine.ns.delete("/y0")
    finally:
        engine.close(checkpoint=False)
    expected = {f"/x{i}" for i in range(1, 4)} | {f"/y{i}" for i in range(1, 6)} | {"/z"}
    return expected, segments(home), checkpoints(home)


def test_damage_only_an_older_checkpoint_needs_has_a_way_out(tmp_path: Path) -> None:
    expected, segs, ckpts = _two_checkpoints(tmp_path)
    assert len(segs) == 2 and len(ckpts) == 2  # the log after the older checkpoint, and after
    old = segs[0]
    seq, offset = record_offsets(old)[2]
    data = damage_records(old, offset)
    rel = f"journal/{old.name}"
    assert names(tmp_path) == expected  # start-up reads from the newest checkpoint: unharmed

    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert f"problem: {rel} at offset {offset}: checksum mismatch" in proc.stdout
    proc = shoal("journal", "repair", home=tmp_path, expect=3)
    assert "a forced repair would lose: no entry of the state the home opens with" in proc.stdout
    assert f"set aside: {rel}, journal/checkpoints/{ckpts[0].name}" in proc.stdout
    proc = shoal("journal", "repair", "--force", home=tmp_path)
    assert proc.stdout.rstrip().endswith(f"journal of {tmp_path} repaired")
    assert (tmp_path / (rel + ".broken")).read_bytes() == bytes(data)
    assert not old.exists() and not ckpts[0].exists()
    assert ckpts[0].with_name(ckpts[0].name + ".broken").exists()
    assert checkpoints(tmp_path) == [ckpts[1]]
    shoal("journal", "verify", home=tmp_path)
    assert names(tmp_path) == expected
    proc = shoal("fs", "ls", "/", home=tmp_path)
    assert proc.stderr == ""  # the copies set aside are not strays


def _records_end(segment: Path) -> int:
    data = segment.read_bytes()
    *_, end = iter_records(data, parse_segment_header(data))
    assert isinstance(end, ScanEnd) and end.clean
    return end.offset


def _joined(home: Path) -> tuple[list[str], list[str], Path]:
    """build(home, 6, 5) with its two segments joined into the first: a segment holding entries
    on both sides of the checkpoint (the log continued in the older segment, as it does once a
    rotation's torn segment was cut). Returns both lists of paths and the segment."""
    kept, later = build(home, 6, 5)
    first, second = segments(home)
    # Join the two: the records after the checkpoint move to the end of the first segment.
    records = second.read_bytes()[24 : _records_end(second)]
    end = _records_end(first)
    with open(first, "r+b") as f:
        f.seek(end)
        f.write(records)
    second.unlink()
    (home / "journal" / "seen").write_text("1\n")
    return kept, later, first


def test_damage_before_the_checkpoint_in_the_segment_start_up_reads_is_split_off(
    tmp_path: Path,
) -> None:
    """A segment holding entries on both sides of the checkpoint (the log continued in the
    older segment, as it does once a rotation's torn segment was cut): damage before the
    checkpoint stops start-up, and a forced repair keeps every entry after the checkpoint."""
    kept, later, first = _joined(tmp_path)
    assert names(tmp_path) == set(kept) | set(later)  # a valid home, if an unusual one

    seq, offset = record_offsets(first)[2]  # /b2's entry: before the checkpoint
    data = damage_records(first, offset)
    rel = f"journal/{first.name}"
    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    assert f"{rel} at offset {offset}: checksum mismatch" in one_line(proc.stderr)

    refused_then_forced(
        tmp_path,
        would="a forced repair would lose: no entry of the state the home opens with",
        did=f"copied the records of {rel} from offset",
    )
    assert (tmp_path / (rel + ".broken")).read_bytes() == bytes(data)
    assert names(tmp_path) == set(kept) | set(later)  # nothing after the checkpoint was lost
    shoal("journal", "verify", home=tmp_path)
    shoal("fs", "touch", "/new", home=tmp_path)
    assert names(tmp_path) == set(kept) | set(later) | {"/new"}


# -- checkpoints --------------------------------------------------------------------------------


def test_a_checkpoint_that_does_not_load_is_set_aside(tmp_path: Path) -> None:
    expected, _segs, ckpts = _two_checkpoints(tmp_path)
    flip(ckpts[1], 300)
    assert names(tmp_path) == expected  # start-up falls back to the older checkpoint
    refused_then_forced(
        tmp_path,
        problem=f"problem: journal/checkpoints/{ckpts[1].name}: checksum",
        would=f"a forced repair would rename journal/checkpoints/{ckpts[1].name} aside",
        did="lost: no entry: start-up does not use this checkpoint",
    )
    assert checkpoints(tmp_path) == [ckpts[0]]
    assert ckpts[1].with_name(ckpts[1].name + ".broken").exists()
    shoal("journal", "verify", home=tmp_path)
    proc = shoal("fs", "ls", "/", home=tmp_path)
    assert proc.stderr == "" and names(tmp_path) == expected


def test_no_checkpoint_loads_and_the_log_starts_late_still_has_a_way_out(tmp_path: Path) -> None:
    """Nothing to rebuild the state from: a forced repair sets the whole journal aside (and
    says so first), and the home opens empty instead of never."""
    _expected, segs, ckpts = _two_checkpoints(tmp_path)
    for ckpt in ckpts:
        flip(ckpt, 300)
    before = journal_files(tmp_path)
    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    assert "no checkpoint verifies" in proc.stderr
    proc = shoal("journal", "repair", home=tmp_path, expect=3)
    assert "a forced repair would lose: entries 1..12 (12 entries)" in proc.stdout
    assert journal_files(tmp_path) == before
    shoal("journal", "repair", "--force", home=tmp_path)
    assert segments(tmp_path) == [] and checkpoints(tmp_path) == []
    for path in [*segs, *ckpts]:
        assert (
            path.with_name(path.name + ".broken").read_bytes()
            == before[str(path.relative_to(tmp_path))]
        )
    shoal("journal", "verify", home=tmp_path)
    assert names(tmp_path) == set()
    shoal("fs", "touch", "/fresh", home=tmp_path)
    assert names(tmp_path) == {"/fresh"}


def test_damage_reaching_past_the_checkpoint_restarts_the_log_after_it(tmp_path: Path) -> None:
    """As above, but the entry right after the checkpoint is damaged too: what followed the
    checkpoint in that segment is lost (and said so), the home opens with the checkpoint."""
    kept, later, first = _joined(tmp_path)
    offsets = dict(record_offsets(first))
    # The entry at 7 is the first after the checkpoint at 6.
    data = damage_records(first, offsets[3], offsets[7])
    rel = f"journal/{first.name}"

    refused_then_forced(
        tmp_path,
        would=f"a forced repair would lose: every entry after the checkpoint at entry 6 that {rel}"
        " held",
        did=f"started journal/log-{7:020d}.seg after the checkpoint at entry 6",
    )
    assert (tmp_path / (rel + ".broken")).read_bytes() == bytes(data)
    assert names(tmp_path) == set(kept)
    shoal("journal", "verify", home=tmp_path)

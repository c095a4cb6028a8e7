"""Start-up replay with the records checked by a second process (journal/scan_process.py) must
end exactly where in-process replay ends: the same state, the same torn-tail repair, the same
error for damage, and the same state again when that process dies halfway."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import msgpack
import pytest

from engine.engine import Engine
from engine.snapshot import digest
from journal import entries, scan_process
from journal.errors import JournalError
from journal.format import frame
from journal.journal import JournalOptions
from journal.layout import list_journal
from journal.reader import read_log
from journal.storage import OsStorage
from tests.cli.shoal_cli import append_record

SEGMENT_SIZE = 16 << 10


def build_home(home: Path, files: int = 400) -> None:
    """A log of every common kind of entry over several segments, with a checkpoint halfway
    (replay starts after it) and more entries after that. Written without group commit, one
    operation per write, so that segments rotate at the same entries in every run."""
    options = JournalOptions(checkpoint_every=0, segment_size=SEGMENT_SIZE, group_commit=False)
    engine = Engine(OsStorage(str(home)), options)
    ns = engine.ns
    try:
        for half in range(2):
            top = f"/d{half}"
            ns.mkdir(f"{top}/sub", parents=True)
            for i in range(files):
                node = ns.create(f"{top}/f{i}.jpg", 0o644, 1000, 1000)
                ns.complete(node.id, 1000 + i, 4 << 20)
            for i in range(0, files, 7):
                ns.rename(f"{top}/f{i}.jpg", f"{top}/sub/r{i}.jpg")
            deleted = [i for i in range(1, files, 11) if i % 7]
            for i in deleted:
                ns.delete(f"{top}/f{i}.jpg")
            for i in range(2, files, 13):
                if i % 7 and i not in deleted:
                    ns.setattr(f"{top}/f{i}.jpg", mode=0o600, mtime=1234)
            ns.symlink(f"{top}/link", "sub/r0.jpg")
            if half == 0:
                engine.checkpoint()
    finally:
        engine.close(checkpoint=False)


def open_home(home: Path, scanner: str) -> tuple[str, Any]:
    """(state digest, open report) of the home after start-up with ``scanner``."""
    options = JournalOptions(checkpoint_every=0, segment_size=SEGMENT_SIZE, replay_scanner=scanner)
    engine = Engine(OsStorage(str(home)), options)
    try:
        return digest(engine.state), engine.journal.report
    finally:
        engine.close(checkpoint=False)


def both_ways(home: Path, tmp_path: Path) -> dict[str, tuple[str, Any] | str]:
    """Start-up of two copies of ``home``, one per scanner: (digest, report), or the error."""
    out: dict[str, tuple[str, Any] | str] = {}
    for scanner in ("inline", "process"):
        copy = tmp_path / f"copy-{scanner}"
        shutil.copytree(home, copy)
        try:
            out[scanner] = open_home(copy, scanner)
        except JournalError as exc:
            out[scanner] = str(exc).replace(str(copy), "HOME")
    return out


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many chunks per segment, so chunk boundaries, segment ends and the replay's start inside
    # a segment all fall between records somewhere.
    monkeypatch.setattr(scan_process, "STEP_BYTES", 700)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many segments the scanning process handed over (0: it was not used)."""
    calls: list[int] = []
    real = scan_process.ScanProcess.replay_segment

    def replay_segment(self: scan_process.ScanProcess, *args: Any) -> Any:
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(scan_process.ScanProcess, "replay_segment", replay_segment)
    return calls


def listing_last(home: Path) -> int:
    return open_home(home, "inline")[1].last_seq


def last_segment(home: Path) -> Path:
    storage = OsStorage(str(home))
    return home / list_journal(storage, "journal").segments[-1][1]


def test_replay_through_the_scanning_process_equals_inline_replay(
    tmp_path: Path, small_steps: None, counted: list[int]
) -> None:
    home = tmp_path / "home"
    build_home(home)
    result = both_ways(home, tmp_path)
    inline, process = result["inline"], result["process"]
    assert isinstance(inline, tuple) and isinstance(process, tuple)
    # The process handed over every segment from the one holding the first entry to replay.
    segments = list_journal(OsStorage(str(home)), "journal").segments
    after = process[1].checkpoint.seq
    start = max(i for i, (first, _) in enumerate(segments) if first <= after + 1)
    assert len(counted) == len(segments) - start >= 2
    assert process[0] == inline[0]
    assert process[1].replayed == inline[1].replayed > 800
    assert process[1].checkpoint is not None  # replay started after a checkpoint


def test_replay_from_inside_a_segment_gets_every_later_entry_once(
    tmp_path: Path, small_steps: None, counted: list[int]
) -> None:
    home = tmp_path / "home"
    build_home(home, files=200)
    storage = OsStorage(str(home))
    listing = list_journal(storage, "journal")
    first, second = listing.segments[1][0], listing.segments[2][0]
    after = (first + second) // 2  # what a checkpoint written mid-segment would cover
    seen: dict[str, list[Any]] = {}
    for scanner in ("inline", "process"):
        got: list[Any] = []
        fast = {code: got.append for code in entries.BY_CODE}

        def on_entry(entry: Any, seq: int, got: list[Any] = got) -> None:
            got.append((seq, entry))  # no entry of this log takes this path

        result = read_log(storage, listing, after, on_entry, fast=fast, scanner=scanner)
        seen[scanner] = got
        assert result.applied == len(got)
    assert counted
    assert seen["process"] == seen["inline"]
    assert len(seen["inline"]) == listing_last(home) - after


def test_auto_uses_a_process_only_for_long_logs(
    tmp_path: Path, counted: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    build_home(home, files=50)
    open_home(home, "auto")
    assert counted == []
    monkeypatch.setattr(scan_process, "SCAN_IN_CHILD_ABOVE", 1)
    open_home(home, "auto")
    assert counted


def _append_raw(home: Path, code: int, payload: bytes) -> None:
    append_record(home, code, payload)  # after the last record, over the preallocated zeros


@pytest.mark.parametrize(
    "damage",
    ["torn tail", "flipped byte", "unknown type", "not msgpack", "two objects", "wrong shape"],
)
def test_damage_ends_the_same_way_through_the_process(
    tmp_path: Path, small_steps: None, counted: list[int], damage: str
) -> None:
    home = tmp_path / "home"
    build_home(home, files=150)
    segment = last_segment(home)
    if damage == "torn tail":
        with open(segment, "ab") as f:
            f.write(frame(10**9, 1, b"\x93\x01\x02\x03")[:17])
    elif damage == "flipped byte":
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0xFF
        segment.write_bytes(bytes(data))
    elif damage == "unknown type":
        _append_raw(home, 99, msgpack.packb([1, "future"]))
    elif damage == "not msgpack":
        _append_raw(home, 2, b"\xc1")
    elif damage == "two objects":  # each a valid create-file field list: a stream would split
        fields = [10**6, 1, "x", 0o644, 0, 0, 1]
        _append_raw(home, 2, msgpack.packb(fields) + msgpack.packb(fields))
    else:
        _append_raw(home, 2, msgpack.packb([1, 2]))
    result = both_ways(home, tmp_path)
    assert counted  # the process path ran
    assert result["process"] == result["inline"]
    if damage == "torn tail":
        inline = result["inline"]
        assert isinstance(inline, tuple) and inline[1].repaired_tail is not None
    else:
        assert isinstance(result["inline"], str)  # an error naming the file and offset
        assert "journal/log-" in result["inline"] and " at offset " in result["inline"]
        problem = {
            "flipped byte": "checksum mismatch",
            "unknown type": "unknown entry type 99",
            "not msgpack": "not msgpack",
            "two objects": "not msgpack",
            "wrong shape": "has 2 fields",
        }[damage]
        assert problem in result["inline"], result["inline"]


def test_a_scanning_process_that_dies_halfway_leaves_replay_to_this_process(
    tmp_path: Path, small_steps: None, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    home = tmp_path / "home"
    build_home(home, files=1500)
    expected = open_home(home, "inline")
    # A pipe of one page: the process cannot have sent everything before it is killed.
    monkeypatch.setattr(scan_process, "PIPE_SIZE", 4096)
    real = scan_process.ScanProcess._apply_chunk
    killed: list[int] = []

    def apply_then_kill(self: scan_process.ScanProcess, *args: Any) -> None:
        real(self, *args)
        if not killed:
            self._child.kill()
            killed.append(self.applied_seq)

    monkeypatch.setattr(scan_process.ScanProcess, "_apply_chunk", apply_then_kill)
    with caplog.at_level(logging.WARNING, logger="journal.reader"):
        got = open_home(home, "process")
    assert killed
    assert got[0] == expected[0]
    assert got[1].replayed == expected[1].replayed
    assert any(
        "replaying" in r.getMessage() and "in this process" in r.getMessage()
        for r in caplog.records
    )

"""The crash simulator itself: what survives a crash, and that its current image behaves like a
real directory tree."""

from __future__ import annotations

import errno
import logging
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.engine import Engine
from engine.snapshot import digest
from journal.errors import JournalNotWritable
from journal.journal import JournalOptions
from journal.storage import OsStorage, create_durably, unlink_durably, write_durably
from recovery.crashsim import (
    FILLS,
    SECTOR,
    Crash,
    Create,
    Fsync,
    SimStorage,
    Tear,
    Write,
)


def _durable_files(storage: SimStorage) -> dict[str, bytes]:
    """What a crash right now keeps when nothing pending survives."""
    return storage.crashed(storage.op_count, 0).files()


def _everything_files(storage: SimStorage) -> dict[str, bytes]:
    """What a crash right now keeps when everything pending survives."""
    end = storage.op_count
    return storage.crashed(end, len(storage.pending_at(end))).files()


@pytest.fixture
def sim() -> SimStorage:
    storage = SimStorage()
    storage.makedirs("d/sub")
    return storage


# -- durability rules ----------------------------------------------------------------------------


def test_created_file_is_lost_without_a_directory_fsync(sim: SimStorage) -> None:
    f = sim.open_write("d/x", append=False)
    f.write(b"hello")
    f.fsync()
    assert sim.read("d/x") == b"hello"
    assert "d/x" not in _durable_files(sim)
    assert _everything_files(sim)["d/x"] == b"hello"


def test_directory_fsync_makes_the_name_durable_but_not_unsynced_bytes(sim: SimStorage) -> None:
    f = sim.open_write("d/x", append=False)
    sim.fsync_dir("d")
    f.write(b"data")
    assert _durable_files(sim)["d/x"] == b""
    f.fsync()
    assert _durable_files(sim)["d/x"] == b"data"


def test_fsync_of_another_directory_does_not_help(sim: SimStorage) -> None:
    f = sim.open_write("d/x", append=False)
    f.write(b"data")
    f.fsync()
    sim.fsync_dir("d/sub")
    sim.fsync_dir("")
    assert "d/x" not in _durable_files(sim)


def test_fsync_makes_only_its_own_file_durable(sim: SimStorage) -> None:
    a = sim.open_write("d/a", append=False)
    b = sim.open_write("d/b", append=False)
    sim.fsync_dir("d")
    a.write(b"A")
    b.write(b"B")
    a.fsync()
    assert _durable_files(sim) == {"d/a": b"A", "d/b": b""}


def test_rename_is_durable_only_after_the_directory_fsync(sim: SimStorage) -> None:
    write_durably(sim, "d/f", b"old")
    f = sim.open_write("d/.tmp", append=False)
    f.write(b"new")
    f.fsync()
    sim.rename("d/.tmp", "d/f")
    assert sim.read("d/f") == b"new" and not sim.exists("d/.tmp")
    assert _durable_files(sim)["d/f"] == b"old"
    # Any prefix of the pending operations: the old file, or the new one in its place.
    end = sim.op_count
    outcomes = {sim.crashed(end, k).files().get("d/f") for k in range(len(sim.pending_at(end)) + 1)}
    assert outcomes == {b"old", b"new"}
    sim.fsync_dir("d")
    assert _durable_files(sim)["d/f"] == b"new"
    assert "d/.tmp" not in _durable_files(sim)


def test_unlink_is_undone_by_a_crash_until_the_directory_fsync(sim: SimStorage) -> None:
    write_durably(sim, "d/f", b"x")
    sim.unlink("d/f")
    assert not sim.exists("d/f")
    assert _durable_files(sim)["d/f"] == b"x"
    sim.fsync_dir("d")
    assert "d/f" not in _durable_files(sim)


def test_a_rename_across_directories_carries_the_creation_it_depends_on(sim: SimStorage) -> None:
    f = sim.open_write("d/sub/x", append=False)
    f.write(b"x")
    f.fsync()
    sim.rename("d/sub/x", "d/y")
    sim.fsync_dir("d")
    # The rename cannot be durable without the file it moves having existed.
    assert _durable_files(sim) == {"d/y": b"x"}


def test_truncate_and_append_follow_posix(sim: SimStorage) -> None:
    f = sim.open_write("d/f", append=False)
    f.write(b"abcdef")
    f.truncate(2)
    f.write(b"Z")  # not append mode: continues at its own position, leaving a hole
    assert sim.read("d/f") == b"ab\0\0\0\0Z"
    g = sim.open_write("d/f", append=True)
    g.truncate(3)
    g.write(b"!")
    assert sim.read("d/f") == b"ab\0!"
    sim.fsync_dir("d")
    assert _durable_files(sim)["d/f"] == b""
    g.fsync()
    assert _durable_files(sim)["d/f"] == b"ab\0!"
    h = sim.open_write("d/f", append=False)
    assert sim.read("d/f") == b""
    h.close()
    with pytest.raises(ValueError):
        h.write(b"x")


# -- torn writes and crash choices -------------------------------------------------------------


def _torn_setup() -> tuple[SimStorage, int]:
    sim = SimStorage()
    sim.makedirs("d")
    f = create_durably(sim, "d/log", b"HEAD")
    f.write(b"0123456789")
    return sim, sim.op_count


@pytest.mark.parametrize("fill", FILLS)
def test_a_torn_write_keeps_a_prefix_then_its_fill(fill: str) -> None:
    sim, end = _torn_setup()
    pending = sim.pending_at(end)
    assert pending == [Write(pending[0].ino, 4, b"0123456789")]  # type: ignore[union-attr]
    got = sim.crashed(end, 1, Tear(3, fill, seed=7)).read("d/log")  # type: ignore[arg-type]
    assert got[:7] == b"HEAD012"
    if fill == "zeros":
        assert got == b"HEAD012" + bytes(7)
    elif fill == "garbage":
        assert len(got) == 14 and got[7:] == random.Random(7).randbytes(7)
    else:
        assert got == b"HEAD012"


@pytest.mark.parametrize("fill", FILLS)
def test_a_torn_write_loses_its_last_byte_even_where_its_fill_equals_it(fill: str) -> None:
    """A record ending in the byte a tear's fill puts there (a wall-clock time ending in 0x00
    under zeros, or under the preallocated zeros an absent fill leaves; the garbage's own byte)
    is torn all the same: whether a tear loses the record never depends on its bytes."""
    sim = SimStorage()
    sim.makedirs("d")
    f = create_durably(sim, "d/log", bytes(16))  # preallocated: zeros where the record goes
    last = random.Random(7).randbytes(1) if fill == "garbage" else b"\0"
    record = b"record" + last
    f.write_at(record, 0)
    end = sim.op_count
    got = sim.crashed(end, 1, Tear(len(record) - 1, fill, seed=7)).read("d/log")  # type: ignore[arg-type]
    assert len(got) == 16 and got[:6] == b"record"
    assert got[6:7] != last, "the tear left the record whole"
    assert got[7:] == bytes(9)


@pytest.mark.parametrize("fill", ["zeros", "absent"])
def test_a_torn_write_shows_what_it_kept_even_where_it_equals_the_old_bytes(fill: str) -> None:
    """A record whose first bytes are zeros (a checksum's first byte, one run in 256), torn
    after them over preallocated zeros, still leaves a trace: whether a tear shows at all never
    depends on its bytes (the crash that keeps none of the write is a crash of its own)."""
    sim = SimStorage()
    sim.makedirs("d")
    f = create_durably(sim, "d/log", bytes(16))
    f.write_at(b"\0\0record", 0)
    end = sim.op_count
    got = sim.crashed(end, 1, Tear(2, fill, seed=7)).read("d/log")  # type: ignore[arg-type]
    assert len(got) == 16 and got != bytes(16), "the torn write left no trace"
    assert got[2:] == bytes(14)  # nothing past what the tear kept


def test_a_scattered_tear_keeps_some_sectors_and_the_old_bytes_elsewhere() -> None:
    sim = SimStorage()
    sim.makedirs("d")
    f = create_durably(sim, "d/log", bytes(SECTOR * 6))  # a preallocated (zeroed) file
    new = bytes(range(1, 256)) * 2  # 510 bytes: 8 sectors over the zeros, the last growing it
    f.write_at(new, SECTOR)
    end = sim.op_count
    seen = set()
    for seed in range(20):
        got = sim.crashed(end, 1, Tear(0, "scattered", seed)).read("d/log")
        sectors = [got[i : i + SECTOR] for i in range(SECTOR, SECTOR + len(new), SECTOR)]
        kept = tuple(g == new[i * SECTOR : (i + 1) * SECTOR] for i, g in enumerate(sectors))
        assert not all(kept)  # a torn write: at least one sector never arrived
        # Each sector is the new bytes or the old zeros (or, past the old end, absent).
        assert all(k or not any(g) for k, g in zip(kept, sectors, strict=True))
        assert got[:SECTOR] == bytes(SECTOR)
        seen.add(kept)
    assert len(seen) > 5  # later sectors arrive without earlier ones, and the other way round


def test_tears_are_only_for_writes_and_within_them() -> None:
    sim, end = _torn_setup()
    with pytest.raises(ValueError):
        sim.crashed(end, 1, Tear(10))
    with pytest.raises(ValueError):
        sim.crashed(end, 0, Tear(0))
    with pytest.raises(ValueError):
        sim.crashed(end, 2)
    sim.fsync_dir("d")
    sim.open_write("d/other", append=False)
    with pytest.raises(ValueError):
        sim.crashed(sim.op_count, len(sim.pending_at(sim.op_count)), Tear(0))


def test_all_crashes_enumerates_every_prefix_and_byte() -> None:
    sim, end = _torn_setup()
    crashes = list(sim.all_crashes(end))
    assert len(crashes) == 2 + 10 * len(FILLS)
    assert len(set(crashes)) == len(crashes)
    contents = {sim.crash(c).read("d/log") for c in crashes}
    assert b"HEAD" in contents and b"HEAD0123456789" in contents
    assert all(c.startswith(b"HEAD") for c in contents)


def test_sample_crashes_are_distinct_and_include_both_extremes() -> None:
    sim, end = _torn_setup()
    sample = sim.sample_crashes(end, random.Random(1), 12)
    assert len(sample) == 12 and len(set(sample)) == 12
    assert Crash(end, 0) in sample and Crash(end, 1) in sample
    assert sum(c.tear is not None for c in sample) == 10
    # Nothing pending: a single possible state.
    sim.open_write("d/log", append=True).fsync()
    assert sim.sample_crashes(sim.op_count, random.Random(1), 12) == [Crash(sim.op_count, 0)]


def test_operations_after_the_cut_never_happened(sim: SimStorage) -> None:
    write_durably(sim, "d/a", b"1")
    cut = sim.op_count
    write_durably(sim, "d/b", b"2")
    sim.unlink("d/a")
    sim.fsync_dir("d")
    for prefix in range(len(sim.pending_at(cut)) + 1):
        assert sim.crashed(cut, prefix).files() == {"d/a": b"1"}
    assert sim.crashed(0, 0).files() == {}
    assert sim.crashed(0, 0).listdir("") == []  # makedirs was the first operation


def test_a_crashed_storage_is_independent_and_starts_a_new_log(sim: SimStorage) -> None:
    write_durably(sim, "d/a", b"1")
    after = sim.crashed(sim.op_count, 0)
    assert after.op_count == 0 and after.listdir("d") == ["a", "sub"]
    write_durably(after, "d/a", b"changed")
    after.unlink("d/a")
    assert sim.read("d/a") == b"1"
    assert sim.crashed(sim.op_count, 0).files() == {"d/a": b"1"}
    # Crashing a crashed storage before anything happened gives it back.
    assert after.crashed(0, 0).files() == {"d/a": b"1"}


def test_write_durably_is_all_or_nothing_at_every_crash_point(sim: SimStorage) -> None:
    write_durably(sim, "d/f", b"old contents")
    start = sim.op_count
    write_durably(sim, "d/f", b"new contents, longer")
    seen = set()
    for cut in range(start, sim.op_count + 1):
        for crash in sim.all_crashes(cut, seed=cut):
            files = sim.crash(crash).files()
            seen.add(files["d/f"])
    assert seen == {b"old contents", b"new contents, longer"}


def test_unlink_durably_leaves_nothing_at_the_end(sim: SimStorage) -> None:
    write_durably(sim, "d/a", b"1")
    write_durably(sim, "d/sub/b", b"2")
    unlink_durably(sim, ["d/a", "d/sub/b"])
    assert _durable_files(sim) == {}


# -- fault injection -------------------------------------------------------------------------


def test_fail_fsync_after_raises_eio_once_and_keeps_nothing(sim: SimStorage) -> None:
    f = sim.open_write("d/x", append=False)
    sim.fsync_dir("d")
    f.write(b"abc")
    sim.fail_fsync_after(1)
    f.fsync()  # the one that still succeeds
    f.write(b"def")
    with pytest.raises(OSError) as info:
        f.fsync()
    assert info.value.errno == errno.EIO and sim.failures == [info.value]
    assert _durable_files(sim)["d/x"] == b"abc"
    assert Fsync(f.ino) not in sim.log[-1:]
    f.fsync()  # one-shot: the next one works again
    assert _durable_files(sim)["d/x"] == b"abcdef"


def test_fail_fsync_covers_directories_and_repeats(sim: SimStorage) -> None:
    sim.open_write("d/x", append=False)
    sim.fail_fsync_after(0, times=2)
    for _ in range(2):
        with pytest.raises(OSError):
            sim.fsync_dir("d")
    sim.fsync_dir("d")
    assert "d/x" in _durable_files(sim)


def test_fail_write_after_writes_nothing(sim: SimStorage) -> None:
    f = sim.open_write("d/x", append=True)
    sim.fail_write_after(1)
    f.write(b"a")
    with pytest.raises(OSError) as info:
        f.write(b"b")
    assert info.value.errno == errno.ENOSPC
    assert sim.read("d/x") == b"a"


def test_denied_prefix_refuses_every_change_below_it(sim: SimStorage) -> None:
    write_durably(sim, "d/sub/f", b"1")
    sim.deny_writes("d/sub")
    for attempt in (
        lambda: sim.check_writable("d/sub"),
        lambda: sim.open_write("d/sub/g", append=False),
        lambda: sim.rename("d/sub/f", "d/f"),
        lambda: sim.unlink("d/sub/f"),
        lambda: sim.makedirs("d/sub/new"),
    ):
        with pytest.raises(PermissionError):
            attempt()
    sim.check_writable("d")
    sim.open_write("d/ok", append=False)


def test_engine_refuses_a_journal_directory_it_cannot_write() -> None:
    sim = SimStorage()
    sim.makedirs("journal/checkpoints")
    sim.deny_writes("journal")
    with pytest.raises(JournalNotWritable, match="not writable"):
        Engine(sim, JournalOptions(group_commit=False))
    assert sim.op_count == 1  # nothing but the makedirs before the denial


def test_an_engine_on_simulated_storage_has_no_home_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated storage has no directory: its engine keeps no cache tiers or credentials on
    disk. It used to pass for a home named "sim:", so every such engine's default tiers were
    one shared /dev/shm directory (named after the working directory) and "sim:/cache" in
    the working directory, whichever test or worker ran it."""
    monkeypatch.chdir(tmp_path)
    engine = Engine(SimStorage(), JournalOptions(group_commit=False))
    try:
        assert engine.tier_specs == []
        assert engine.cache is None
        engine.ns.mkdir("/a")
    finally:
        engine.close()
    assert os.listdir(tmp_path) == []


# -- the journal on the simulator -----------------------------------------------------------


def test_a_torn_segment_header_after_rotation_is_a_torn_tail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash while a new segment's header is written (zeros, garbage, or too short) must
    open as the state before it, not as corruption: the header was never durable and `seen`
    does not name the segment yet."""
    caplog.set_level(logging.ERROR)
    sim = SimStorage()
    options = JournalOptions(group_commit=False, segment_size=30, checkpoint_every=0)
    engine = Engine(sim, options)
    engine.ns.mkdir("/a")
    before = digest(engine.state)
    start = sim.op_count
    engine.ns.mkdir("/b")  # the first segment is full: this one rotates
    rotation = [i for i, op in enumerate(sim.log[start:], start) if type(op) is Create]
    assert rotation, "expected the second mkdir to start a new segment"
    header_cut = rotation[0] + 2  # Create, then the header Write
    assert type(sim.log[header_cut - 1]) is Write
    checked = 0
    for crash in sim.all_crashes(header_cut, seed=3):
        recovered = Engine(sim.crash(crash), options)
        assert digest(recovered.state) == before
        recovered.ns.mkdir("/c")  # and it can append again
        checked += 1
    assert checked == 3 + 24 * len(FILLS)  # pending [Create, Write]: 3 prefixes, 24 tears


# -- differential: the current image behaves like a real directory tree ----------------------

Action = tuple[Any, ...]
DIRS = ("d", "d/e")
_names = st.sampled_from(["a", "b", "c"])
_dirs = st.sampled_from(["", *DIRS])
_paths = st.builds(lambda d, n: f"{d}/{n}" if d else n, _dirs, _names)
_actions = st.one_of(
    st.tuples(st.just("write"), _paths, st.booleans(), st.binary(max_size=20)),
    st.tuples(st.just("truncate"), _paths, st.integers(0, 30)),
    st.tuples(st.just("rename"), _paths, _paths),
    st.tuples(st.just("unlink"), _paths),
    st.tuples(st.just("fsync_dir"), _dirs),
)


def _apply(storage: SimStorage | OsStorage, action: Action) -> str:
    """Runs one action; returns the name of the exception it raised ('' if none)."""
    try:
        kind = action[0]
        if kind == "write":
            f = storage.open_write(action[1], append=action[2])
            f.write(action[3])
            f.fsync()
            f.close()
        elif kind == "truncate":
            f = storage.open_write(action[1], append=True)
            f.truncate(action[2])
            f.close()
        elif kind == "rename":
            storage.rename(action[1], action[2])
        elif kind == "unlink":
            storage.unlink(action[1])
        else:
            storage.fsync_dir(action[1])
    except OSError as exc:
        return type(exc).__name__
    return ""


def _tree(storage: SimStorage | OsStorage, d: str = "") -> dict[str, bytes | None]:
    """Every file's content and every directory (as None) below ``d``."""
    out: dict[str, bytes | None] = {}
    for name in storage.listdir(d):
        path = f"{d}/{name}" if d else name
        if path in DIRS:
            out[path] = None
            out.update(_tree(storage, path))
        else:
            data = storage.read(path)
            assert storage.size(path) == len(data)
            out[path] = data
    return out


@settings(max_examples=150, deadline=None)
@given(actions=st.lists(_actions, max_size=25))
def test_current_image_matches_a_real_directory(
    tmp_path_factory: pytest.TempPathFactory, actions: list[Action]
) -> None:
    real = OsStorage(str(tmp_path_factory.mktemp("real")))
    sim = SimStorage()
    for storage in (real, sim):
        storage.makedirs("d/e")
    for action in actions:
        assert _apply(sim, action) == _apply(real, action), action
        assert _tree(sim) == _tree(real)
    # With every pending operation kept, a crash at the end is the current image; with every
    # file and directory fsynced, even keeping none of them is.
    files = sim.files()
    assert _everything_files(sim) == files
    for path in files:
        sim.open_write(path, append=True).fsync()
    for d in ("", *DIRS):
        sim.fsync_dir(d)
    assert _durable_files(sim) == files

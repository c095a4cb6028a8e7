"""Damaged, foreign and unwritable journals: each ends in a clear error (exit code, one line
naming the file, the offset and what to run next, no traceback) or in a recovery that keeps
every acknowledged entry. Never in silent loss."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from engine.engine import Engine
from engine.snapshot import digest
from engine.state import State
from journal.format import frame
from journal.layout import list_journal
from journal.reader import read_log
from journal.storage import OsStorage
from tests.cli.shoal_cli import (
    ROOT,
    append_record,
    checkpoints,
    env,
    record_offsets,
    segments,
    shoal,
)
from tests.crashes import flip, journal_files, names, one_line
from tests.homes import remove_home
from tests.invariants import OpenEngine


def make_home(home: Path, files: int, toml: str = "", sync_every: int = 0) -> list[str]:
    """A home whose log creates /f0../f{files-1} (entries 1..files); returns their paths.
    ``sync_every``: a sync (as fsync makes) after every that many creates."""
    home.mkdir(parents=True, exist_ok=True)
    if toml:
        (home / "shoal.toml").write_text(toml)
    engine = Engine.open_home(str(home))
    paths = [f"/f{i}" for i in range(files)]
    try:
        for n, path in enumerate(paths, 1):
            engine.ns.create(path)
            if sync_every and n % sync_every == 0:
                engine.fs.make_durable()
    finally:
        engine.close(checkpoint=False)
    return paths


# -- torn tail ----------------------------------------------------------------------------------


def test_torn_tail_is_truncated_at_open_keeping_every_earlier_entry(tmp_path: Path) -> None:
    paths = make_home(tmp_path, 40)
    [segment] = segments(tmp_path)
    original = segment.read_bytes()
    seq, offset = record_offsets(segment)[-1]
    cut = offset + 11  # mid-header of the last record: its write never completed
    segment.write_bytes(original[:cut])

    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert "TORN TAIL" in proc.stdout
    assert f"problem: journal/{segment.name} at offset {offset}: torn tail" in proc.stdout
    assert "`shoal journal repair` truncates it" in proc.stdout
    assert "opening the home truncates it automatically" in proc.stdout

    proc = shoal("fs", "ls", "/", home=tmp_path)
    warning = one_line(proc.stderr)
    assert warning.startswith(
        f"shoal: warning: truncated a torn tail: journal/{segment.name} from offset {offset}"
        f" ({cut - offset} bytes,"
    )
    aside = segment.with_name(segment.name + ".broken")
    assert aside.read_bytes() == original[:cut]
    assert segment.stat().st_size == offset
    assert names(tmp_path) == set(paths[:-1])  # all but the one whose record was cut
    shoal("journal", "verify", home=tmp_path)
    shoal("fs", "touch", "/after", home=tmp_path)  # appending continues cleanly
    assert names(tmp_path) == set(paths[:-1]) | {"/after"}


def test_repair_truncates_a_torn_tail_without_force(tmp_path: Path) -> None:
    paths = make_home(tmp_path, 10)
    [segment] = segments(tmp_path)
    with open(segment, "ab") as f:
        f.write(b"\x5a" * 40 + b"\x00" * 60)  # a write cut short: garbage, then zeros
    proc = shoal("journal", "repair", home=tmp_path)
    assert f"repaired journal/{segment.name} at offset" in proc.stdout
    assert "copied" in proc.stdout and ".broken, then truncated it at offset" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"journal of {tmp_path} repaired")
    assert shoal("fs", "ls", "/", home=tmp_path).stderr == ""  # nothing left to truncate
    assert names(tmp_path) == set(paths)


# -- a flipped byte mid-log ---------------------------------------------------------------------


def test_flipped_byte_mid_log_refuses_then_force_keeps_entries_before_it(tmp_path: Path) -> None:
    # Damage is told from a torn tail by a later write that followed a sync (docs/journal.md):
    # with the default commit interval, the creates are synced one by one here, as fsync does.
    paths = make_home(tmp_path, 50, sync_every=1)
    [segment] = segments(tmp_path)
    records = record_offsets(segment)
    bad_seq, bad_offset = records[24]
    flip(segment, bad_offset + 30)  # in the payload: the checksum no longer matches
    damaged = segment.read_bytes()
    rel = f"journal/{segment.name}"

    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    line = one_line(proc.stderr)
    assert line.startswith(f"shoal: error: journal of {tmp_path}: {rel} at offset {bad_offset}:")
    assert "checksum mismatch" in line and "shoal journal verify" in line
    assert "shoal journal repair --force" in line

    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert f"problem: {rel} at offset {bad_offset}: checksum mismatch" in proc.stdout
    assert f"entries: {bad_seq - 1} (seq 1..{bad_seq - 1})" in proc.stdout

    before = journal_files(tmp_path)
    proc = shoal("journal", "repair", home=tmp_path, expect=3)
    assert f"damage: {rel} at offset {bad_offset}: checksum mismatch" in proc.stdout
    assert f"would lose: entries {bad_seq}..50 ({50 - bad_seq + 1} entries" in proc.stdout
    assert "refusing without --force" in proc.stdout
    assert journal_files(tmp_path) == before  # a refused repair touches nothing

    proc = shoal("journal", "repair", "--force", home=tmp_path)
    assert f"lost: entries {bad_seq}..50" in proc.stdout
    assert (tmp_path / (rel + ".broken")).read_bytes() == damaged
    assert segment.stat().st_size == bad_offset
    # Entry n created /f{n-1}: everything before the damaged entry is there, nothing after.
    assert names(tmp_path) == set(paths[: bad_seq - 1])
    shoal("journal", "verify", home=tmp_path)


def test_damage_in_a_middle_segment_sets_later_segments_aside(tmp_path: Path) -> None:
    paths = make_home(tmp_path, 60, "[journal]\nsegment_size = 300\n")
    segs = segments(tmp_path)
    assert len(segs) >= 4
    victim = segs[1]
    bad_seq, bad_offset = record_offsets(victim)[1]
    flip(victim, bad_offset + 25)
    later = [f"journal/{s.name}" for s in segs[2:]]

    proc = shoal("journal", "repair", home=tmp_path, expect=3)
    assert f"would lose: entries {bad_seq}..60" in proc.stdout
    for name in later:
        assert name in proc.stdout  # named as set aside

    shoal("journal", "repair", "--force", home=tmp_path)
    for name in later:
        assert not (tmp_path / name).exists()
        assert (tmp_path / (name + ".broken")).exists()
    assert (tmp_path / "journal" / "seen").read_text().strip() == str(int(victim.name[4:24]))
    assert names(tmp_path) == set(paths[: bad_seq - 1])
    shoal("journal", "verify", home=tmp_path)
    shoal("fs", "touch", "/new", home=tmp_path)
    assert "/new" in names(tmp_path)


# -- missing segments ---------------------------------------------------------------------------


def test_missing_middle_segment_is_a_gap(tmp_path: Path) -> None:
    make_home(tmp_path, 40, "[journal]\nsegment_size = 300\nkeep_checkpoints = 100\n")
    segs = segments(tmp_path)
    assert len(segs) >= 3
    segs[1].unlink()
    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    line = one_line(proc.stderr)
    assert f"journal/{segs[2].name}: sequence gap: the previous segment ends at entry" in line
    assert "restore it from a backup" in line
    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert f"problem: journal/{segs[2].name}: sequence gap" in proc.stdout
    proc = shoal("journal", "repair", home=tmp_path, expect=3)
    assert "later segments set aside:" in proc.stdout and f"journal/{segs[2].name}" in proc.stdout


def test_missing_newest_segment_is_named_by_the_seen_check(tmp_path: Path) -> None:
    make_home(tmp_path, 40, "[journal]\nsegment_size = 300\n")
    newest = segments(tmp_path)[-1]
    newest.unlink()
    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    line = one_line(proc.stderr)
    assert (
        f"segment {newest.name} is missing (the journal's `seen` file says it was created" in line
    )
    assert "shoal journal repair --force" in line
    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert f"problem: {newest.name}: segment {newest.name} is missing" in proc.stdout
    proc = shoal("journal", "repair", "--force", home=tmp_path)
    assert f"the missing segment {newest.name}" in proc.stdout and "stays lost" in proc.stdout
    remaining = segments(tmp_path)[-1]
    assert (tmp_path / "journal" / "seen").read_text().strip() == str(int(remaining.name[4:24]))
    shoal("fs", "ls", "/", home=tmp_path)
    shoal("journal", "verify", home=tmp_path)


def test_garbled_seen_marker_is_reported_and_rewritten(tmp_path: Path) -> None:
    paths = make_home(tmp_path, 5)
    (tmp_path / "journal" / "seen").write_bytes(b"\x00garbage")
    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert "problem: journal/seen: the `seen` marker holds" in proc.stdout
    proc = shoal("journal", "repair", home=tmp_path)
    assert "set the `seen` marker to 1" in proc.stdout
    assert (tmp_path / "journal" / "seen").read_text() == "1\n"
    shoal("journal", "verify", home=tmp_path)
    assert names(tmp_path) == set(paths)


def test_torn_segment_header_is_a_torn_tail_until_seen_names_it(tmp_path: Path) -> None:
    paths = make_home(tmp_path, 5)
    [segment] = segments(tmp_path)
    torn = segment.with_name("log-00000000000000000006.seg")
    torn.write_bytes(b"SHOALJ")
    torn.chmod(0o600)  # as Shoal creates its files: only the torn header is to be reported
    # `seen` names a segment only once its header is durable: then a short header is damage.
    (tmp_path / "journal" / "seen").write_text("6\n")
    proc = shoal("fs", "touch", "/next", home=tmp_path, expect=3)
    assert f"journal/{torn.name} at offset 0: segment header is 6 bytes, expected 24" in one_line(
        proc.stderr
    )
    assert torn.read_bytes() == b"SHOALJ"
    # Not named yet: its creation was cut short, a torn tail removed at open.
    (tmp_path / "journal" / "seen").write_text("1\n")
    proc = shoal("fs", "touch", "/next", home=tmp_path)
    assert (
        "truncated a torn tail: journal/log-00000000000000000006.seg from offset 0" in proc.stderr
    )
    assert not torn.exists() and torn.with_name(torn.name + ".broken").read_bytes() == b"SHOALJ"
    assert names(tmp_path) == set(paths) | {"/next"}
    shoal("journal", "verify", home=tmp_path)


# -- checkpoints --------------------------------------------------------------------------------


def test_corrupt_newest_checkpoint_falls_back_to_the_older_one(
    tmp_path: Path, open_engine: OpenEngine, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "shoal.toml").write_text("[journal]\nkeep_checkpoints = 3\n")
    engine = open_engine(tmp_path)
    for i in range(10):
        engine.ns.create(f"/a{i}")
    older = engine.checkpoint()
    engine.ns.mkdir("/b")
    engine.ns.rename("/a1", "/b/a1")
    newer = engine.checkpoint()
    engine.ns.delete("/a2")
    expected = digest(engine.state)
    engine.close(checkpoint=False)

    flip(tmp_path / newer.path, 200)
    engine = open_engine(tmp_path)
    try:
        report = engine.journal.report
        assert report is not None and report.checkpoint == older
        assert (
            len(report.rejected_checkpoints) == 1 and newer.path in report.rejected_checkpoints[0]
        )
        assert report.replayed == engine.state.last_seq - older.seq
        assert digest(engine.state) == expected
    finally:
        engine.close(checkpoint=False)
    assert any("checkpoint rejected, falling back" in r.message for r in caplog.records)

    storage = OsStorage(str(tmp_path))
    replayed = State()
    read_log(storage, list_journal(storage, "journal"), 0, replayed.apply)
    assert digest(replayed) == expected

    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert f"problem: {newer.path}: checksum" in proc.stdout
    assert "falls back to an older checkpoint" in proc.stdout
    assert checkpoints(tmp_path)  # nothing was deleted


def test_corrupt_only_checkpoint_falls_back_to_the_whole_log(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    engine = open_engine(tmp_path)
    for i in range(5):
        engine.ns.mkdir(f"/d{i}")
    only = engine.checkpoint()
    engine.ns.rename("/d0", "/d1/d0")
    expected = digest(engine.state)
    engine.close(checkpoint=False)
    # The log from entry 1 was kept: with one checkpoint, the empty state is its fallback.
    assert segments(tmp_path)[0].name == f"log-{1:020d}.seg"
    flip(tmp_path / only.path, 100)
    engine = open_engine(tmp_path)
    try:
        assert engine.journal.report is not None and engine.journal.report.checkpoint is None
        assert digest(engine.state) == expected
    finally:
        engine.close(checkpoint=False)


# -- foreign input ------------------------------------------------------------------------------


def test_unknown_entry_type_from_a_newer_version(tmp_path: Path) -> None:
    make_home(tmp_path, 5)
    [segment] = segments(tmp_path)
    seq = append_record(tmp_path, 99, msgpack.packb([1, "future"]))
    offset = record_offsets(segment)[-1][1]
    future = frame(seq, 99, msgpack.packb([1, "future"]))
    assert segment.read_bytes()[offset:].rstrip(b"\0") == future

    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    line = one_line(proc.stderr)
    assert f"journal/{segment.name} at offset {offset}" in line and "unknown entry type 99" in line
    assert "newer version of shoal: upgrade shoal" in line

    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert (
        f"problem: journal/{segment.name} at offset {offset}: entry {seq} has unknown type 99"
        in proc.stdout
    )
    assert "newer version" in proc.stdout

    proc = shoal("journal", "repair", "--force", home=tmp_path, expect=3)
    assert "not repaired: `shoal journal verify` still reports" in proc.stdout
    assert "upgrade shoal" in proc.stdout
    assert segment.read_bytes()[offset:].rstrip(b"\0") == future

    proc = shoal("journal", "dump", home=tmp_path, expect=3)
    assert len(proc.stdout.splitlines()) == seq - 1  # everything before it was dumped
    assert "newer version" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stray_files_are_ignored_with_a_warning_and_listed_by_verify(tmp_path: Path) -> None:
    paths = make_home(tmp_path, 8)
    (tmp_path / "journal" / "notes.txt").write_text("mine")
    (tmp_path / "journal" / "checkpoints" / "old.db").write_bytes(b"x")
    for stray in ("notes.txt", "checkpoints/old.db"):  # private, as the home's files must be
        (tmp_path / "journal" / stray).chmod(0o600)
    proc = shoal("fs", "ls", "/", home=tmp_path)
    assert proc.stderr.splitlines() == [
        "shoal: warning: ignoring stray file journal/notes.txt in the journal directory",
        "shoal: warning: ignoring stray file journal/checkpoints/old.db in the journal directory",
    ]
    assert names(tmp_path) == set(paths)
    proc = shoal("journal", "verify", home=tmp_path)
    assert "stray files (ignored by the journal):\n" in proc.stdout
    assert (
        "    journal/notes.txt\n" in proc.stdout and "    journal/checkpoints/old.db" in proc.stdout
    )
    assert (tmp_path / "journal" / "notes.txt").read_text() == "mine"


# -- a home this process may not write ----------------------------------------------------------


@pytest.fixture
def shared_home() -> Iterator[Path]:
    """A home outside pytest's private tmp directory, reachable by other users."""
    top = Path(tempfile.mkdtemp(prefix="shoal-perm-"))
    top.chmod(0o755)
    try:
        yield top / "home"
    finally:
        remove_home(top / "home")  # and its MEM tier
        shutil.rmtree(top, ignore_errors=True)


def _read_only_bind(path: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Runs ``cmd`` in a private mount namespace where ``path`` is a read-only bind mount."""
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    return subprocess.run(
        [*unshare, str(path), *cmd],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _can_bind_read_only(path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    return _read_only_bind(path, "true").returncode == 0


@pytest.mark.parametrize("what", ["journal", "home"])
def test_read_only_journal_or_home_is_a_clear_error(shared_home: Path, what: str) -> None:
    paths = make_home(shared_home, 3)
    target = shared_home / "journal" if what == "journal" else shared_home
    if not _can_bind_read_only(target):
        pytest.skip("cannot make a read-only bind mount here (needs unshare and CAP_SYS_ADMIN)")
    before = journal_files(shared_home)
    cli = [sys.executable, "-m", "cli.main", "--home", str(shared_home)]
    proc = _read_only_bind(target, *cli, "fs", "touch", "/new")
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    line = one_line(proc.stderr)
    if what == "journal":
        assert line == (
            f"shoal: error: journal of {shared_home}: journal directory {shared_home}/journal is"
            " not writable (directory is not writable); fix its ownership or permissions, or"
            " use another home"
        )
    else:
        assert line.startswith(f"shoal: error: {shared_home}/lock: Read-only file system;")
    assert journal_files(shared_home) == before
    assert names(shared_home) == set(paths)  # still intact and usable once writable


def _as_nobody() -> None:
    os.setgid(65534)
    os.setuid(65534)


def _nobody_can_run_python() -> bool:
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import apsw, msgpack"],
            cwd="/",
            env=env(),
            capture_output=True,
            preexec_fn=_as_nobody,
        )
    except OSError:  # the interpreter itself is out of reach
        return False
    return probe.returncode == 0


def _run_as_other_user(how: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Runs ``cmd`` as a process that does not own the home: user nobody, or root without the
    capabilities that override file permissions (for where nobody cannot reach the Python
    installation) on a home owned by nobody."""
    if how == "nobody":
        return subprocess.run(
            list(cmd),
            cwd="/",
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_as_nobody,
        )
    drop = "--bounding-set=-dac_override,-dac_read_search,-fowner"
    return subprocess.run(
        ["setpriv", drop, *cmd],
        cwd="/",
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", ["nobody", "root-without-dac-capabilities"])
def test_home_this_user_may_not_write_is_a_clear_error(shared_home: Path, how: str) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to switch users or drop capabilities")
    if how == "nobody" and not _nobody_can_run_python():
        pytest.skip("user nobody cannot run this Python (its installation is private to root)")
    if how != "nobody" and shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    paths = make_home(shared_home, 2)
    if how != "nobody":
        for p in [shared_home, *shared_home.rglob("*")]:
            os.chown(p, 65534, 65534)
    before = journal_files(shared_home)
    cli = [sys.executable, "-m", "cli.main", "--home", str(shared_home)]
    for args in (("fs", "touch", "/new"), ("journal", "verify")):
        proc = _run_as_other_user(how, *cli, *args)
        assert proc.returncode == 5, proc.stderr
        assert "Traceback" not in proc.stderr
        line = one_line(proc.stderr)
        assert line.startswith(f"shoal: error: {shared_home}/lock: Permission denied;"), line
        assert "the home must be writable by the user running shoal" in line
    assert journal_files(shared_home) == before
    assert names(shared_home) == set(paths)

"""`shoal journal ...`, `shoal fsck`, `shoal bench journal` and the home lock, run as a
subprocess against homes built with the engine API."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgpack
import sqlite_utils

from engine.engine import Engine
from engine.snapshot import digest
from journal import entries as E
from tests.cli.shoal_cli import (
    ROOT,
    append_record,
    checkpoints,
    env,
    record_offsets,
    rename_inode,
    rewrite_checkpoint,
    segments,
    shoal,
)
from tests.invariants import OpenEngine
from ufs import tempfiles


def build(home: Path, files: int = 20, **overrides: object) -> int:
    """A home with /d, /d/sub, ``files`` files in /d and a symlink; returns the last seq."""
    engine = Engine.open_home(str(home), dict(overrides) or None)
    try:
        engine.ns.mkdir("/d/sub", parents=True)
        for i in range(files):
            engine.ns.create(f"/d/f{i}")
        engine.ns.symlink("/link", "/d")
        return engine.state.last_seq
    finally:
        engine.close(checkpoint=False)


def kv(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


# -- checkpoint and replay ----------------------------------------------------------------------


def test_checkpoint(tmp_path: Path) -> None:
    last = build(tmp_path)
    out = shoal("journal", "checkpoint", home=tmp_path).stdout
    m = re.fullmatch(r"wrote checkpoint (\S+) at seq (\d+)\n", out)
    assert m, out
    assert int(m.group(2)) == last
    path = Path(m.group(1))
    assert path.exists() and path in checkpoints(tmp_path)
    assert f"checkpoint-{last:020d}-" in path.name


def test_replay_counts_digest_and_full_replay(tmp_path: Path, open_engine: OpenEngine) -> None:
    last = build(tmp_path, files=7)
    shoal("journal", "checkpoint", home=tmp_path)
    engine = open_engine(tmp_path)
    engine.ns.create("/after")
    engine.close(checkpoint=False)
    engine = open_engine(tmp_path)
    expected = digest(engine.state)
    engine.close(checkpoint=False)

    info = kv(shoal("journal", "replay", "--verify", home=tmp_path).stdout)
    assert info["checkpoint"].endswith(f"(seq {last})")
    assert info["replayed entries"] == "1"
    assert info["last seq"] == str(last + 1)
    # root, /d, /d/sub, 7 files, /link, /after
    assert (info["inodes"], info["directories"], info["files"], info["symlinks"]) == (
        "12",
        "3",
        "8",
        "1",
    )
    assert (info["mounts"], info["blocks"], info["pending persists"]) == ("0", "0", "0")
    assert info["digest"] == expected
    assert info["full replay"] == f"{last + 1} entries, digest {expected}: match"
    # Replay writes nothing: no new checkpoint.
    assert len(checkpoints(tmp_path)) == 1


def test_replay_verify_says_when_segment_1_is_gone(tmp_path: Path) -> None:
    build(tmp_path, files=2)
    shoal("journal", "checkpoint", home=tmp_path)
    shoal("fs", "touch", "/x", home=tmp_path)
    shoal("journal", "checkpoint", home=tmp_path)  # the second checkpoint retires segment 1
    assert segments(tmp_path)[0].name != f"log-{1:020d}.seg"
    info = kv(shoal("journal", "replay", "--verify", home=tmp_path).stdout)
    assert info["full replay"].startswith("not done: the oldest segment starts at entry")
    assert info["full replay"].endswith("nothing compared")


def test_replay_verify_detects_a_checkpoint_that_disagrees_with_the_log(tmp_path: Path) -> None:
    build(tmp_path, files=3)
    shoal("journal", "checkpoint", home=tmp_path)
    [ckpt] = checkpoints(tmp_path)
    rewrite_checkpoint(ckpt, rename_inode("f1", "renamed"))
    proc = shoal("journal", "replay", "--verify", home=tmp_path, expect=3)
    assert "MISMATCH" in kv(proc.stdout)["full replay"]
    assert "differs from a replay of the whole log" in proc.stderr


# -- dump ---------------------------------------------------------------------------------------


def test_dump_jsonl_is_continuous_and_filters(tmp_path: Path) -> None:
    last = build(tmp_path, files=30, **{"journal.segment_size": 256})
    assert len(segments(tmp_path)) >= 3  # the dump crosses segment boundaries
    rows = [
        json.loads(x)
        for x in shoal("journal", "dump", "--format", "jsonl", home=tmp_path).stdout.splitlines()
    ]
    assert [r["seq"] for r in rows] == list(range(1, last + 1))
    assert rows[0] == {**E.to_dict(E.MkDir(2, 1, "d", 0o755, 0, 0, rows[0]["time"])), "seq": 1}
    assert {r["type"] for r in rows} == {"MkDir", "CreateFile", "Symlink"}

    part = shoal(
        "journal",
        "dump",
        "--format",
        "jsonl",
        "--from",
        "5",
        "--to",
        "9",
        "--type",
        "CreateFile,Symlink",
        home=tmp_path,
    ).stdout
    assert [json.loads(x)["seq"] for x in part.splitlines()] == [5, 6, 7, 8, 9]

    text = shoal("journal", "dump", "--to", "3", home=tmp_path).stdout.splitlines()
    assert len(text) == 3
    assert re.fullmatch(r'1 MkDir id=2 parent=1 name="d" mode=0o755 uid=0 gid=0 time=\d+', text[0])
    assert text[2].startswith('3 CreateFile id=4 parent=2 name="f0" mode=0o644 ')


def test_dump_usage_errors(tmp_path: Path) -> None:
    build(tmp_path, files=1)
    proc = shoal("journal", "dump", "--type", "MkDir,Bogus", home=tmp_path, expect=2)
    assert "unknown entry type Bogus; valid types are: MkDir, CreateFile," in proc.stderr
    proc = shoal("journal", "dump", "--format", "sqlite", home=tmp_path, expect=2)
    assert "--format sqlite needs --out FILE" in proc.stderr
    proc = shoal("journal", "dump", "--from", "5", "--to", "2", home=tmp_path, expect=2)
    assert "--to 2 is before --from 5" in proc.stderr
    proc = shoal("journal", "dump", home=tmp_path / "nowhere", expect=1)
    assert "is not a Shoal home" in proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_dump_sqlite_is_queryable(tmp_path: Path) -> None:
    home = tmp_path / "h"
    last = build(home, files=10)
    db_path = tmp_path / "out.db"
    shoal("journal", "dump", "--format", "sqlite", "--out", str(db_path), home=home)
    conn = sqlite3.connect(db_path)
    assert conn.execute("select count(*) from entries where type='MkDir'").fetchone() == (2,)
    assert conn.execute("select count(*), min(seq), max(seq) from entries").fetchone() == (
        last,
        1,
        last,
    )
    row = conn.execute(
        "select id, parent, name, json_extract(fields, '$.mode') from entries where name='f3'"
    ).fetchone()
    assert row[1:] == (2, "f3", 0o644)
    conn.close()
    # A second export replaces the table rather than adding to it.
    shoal(
        "journal",
        "dump",
        "--format",
        "sqlite",
        "--out",
        str(db_path),
        "--type",
        "Symlink",
        home=home,
    )
    db = sqlite_utils.Database(db_path)
    assert [r["type"] for r in db.query("select type from entries")] == ["Symlink"]


def test_dump_survives_bytes_valued_fields(tmp_path: Path) -> None:
    home = tmp_path / "h"
    build(home, files=1)
    payload = msgpack.packb([99, 1, b"\xff\x00raw", 0o755, 0, 0, 5], use_bin_type=True)
    seq = append_record(home, E.TYPE_CODES[E.MkDir], payload)
    rows = shoal("journal", "dump", "--format", "jsonl", "--from", str(seq), home=home).stdout
    assert json.loads(rows)["name"] == {"bytes_hex": "ff00726177"}
    text = shoal("journal", "dump", "--from", str(seq), home=home).stdout
    assert 'name={"bytes_hex":"ff00726177"}' in text
    db_path = tmp_path / "b.db"
    shoal("journal", "dump", "--format", "sqlite", "--out", str(db_path), home=home)
    conn = sqlite3.connect(db_path)
    assert conn.execute("select name from entries where seq=?", (seq,)).fetchone() == (
        b"\xff\x00raw",
    )


def test_dump_stops_at_a_torn_tail_and_says_where(tmp_path: Path) -> None:
    last = build(tmp_path, files=5)
    [segment] = segments(tmp_path)
    seq, offset = record_offsets(segment)[-1]
    with open(segment, "r+b") as f:
        f.truncate(offset + 7)
    proc = shoal("journal", "dump", "--format", "jsonl", home=tmp_path)
    assert [json.loads(x)["seq"] for x in proc.stdout.splitlines()] == list(range(1, last))
    assert f"torn tail at journal/{segment.name} offset {offset} (7 bytes" in proc.stderr


# -- verify and repair on a healthy home --------------------------------------------------------


def test_verify_summary(tmp_path: Path) -> None:
    last = build(tmp_path, files=4)
    shoal("journal", "checkpoint", home=tmp_path)
    shoal("fs", "touch", "/z", home=tmp_path)
    out = shoal("journal", "verify", home=tmp_path).stdout
    assert out.splitlines()[0] == f"journal of {tmp_path}: OK"
    assert "  segments: 2\n" in out
    assert f"  entries: {last + 2} (seq 1..{last + 2})\n" in out
    assert "CreateFile 5" in out and "CompleteFile 1" in out
    assert f"  checkpoints: 1\n    journal/checkpoints/checkpoint-{last:020d}-" in out
    assert (
        f"  replayed: 2 entries applied on checkpoint journal/checkpoints/checkpoint-{last:020d}-"
        in out
    )


def test_verify_replays_the_log_and_repair_cuts_before_an_entry_that_cannot_apply(
    tmp_path: Path,
) -> None:
    build(tmp_path, files=3)
    shoal("fs", "touch", "/kept", home=tmp_path)
    # Checksums, decodes, and names an inode that never existed: start-up cannot apply it.
    seq = append_record(tmp_path, E.TYPE_CODES[E.Delete], E.encode(E.Delete(999, 1, "ghost", 7)))
    [segment] = segments(tmp_path)
    offset = record_offsets(segment)[-1][1]
    where = f"journal/{segment.name} at offset {offset}"
    why = f"entry {seq} (Delete) cannot be applied: "

    proc = shoal("fs", "ls", "/", home=tmp_path, expect=3)
    assert f"{where}: entry {seq} cannot be applied: inode 999 does not exist" in proc.stderr
    proc = shoal("journal", "verify", home=tmp_path, expect=3)
    assert f"problem: {where}: {why}inode 999 does not exist" in proc.stdout
    assert f"cuts the log before entry {seq}" in proc.stdout
    assert f"  replayed: {seq - 1} entries applied on the empty state" in proc.stdout

    proc = shoal("journal", "repair", home=tmp_path, expect=3)
    assert f"a forced repair would lose: entries {seq}..{seq} (1 entries)" in proc.stdout
    proc = shoal("journal", "repair", "--force", home=tmp_path)
    assert f"copied journal/{segment.name} to journal/{segment.name}.broken" in proc.stdout
    assert segment.stat().st_size == offset
    shoal("journal", "verify", home=tmp_path)
    out = shoal("fs", "ls", "/", home=tmp_path).stdout
    assert len(out.splitlines()) == 3 and " kept\n" in out and " link -> /d" in out


def test_repair_of_a_healthy_home_changes_nothing(tmp_path: Path) -> None:
    build(tmp_path, files=2)
    before = {p.name: p.read_bytes() for p in (tmp_path / "journal").iterdir() if p.is_file()}
    out = shoal("journal", "repair", home=tmp_path).stdout
    assert out == f"journal of {tmp_path} needs no repair\n"
    after = {p.name: p.read_bytes() for p in (tmp_path / "journal").iterdir() if p.is_file()}
    assert after == before


# -- the home lock ------------------------------------------------------------------------------


def test_a_second_process_gets_exit_4_naming_the_home(tmp_path: Path) -> None:
    build(tmp_path, files=1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom engine.engine import Engine\ne = Engine.open_home(sys.argv[1])\n"
            "print('ready', flush=True)\nsys.stdin.read()\ne.close()\n",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        for args in (
            ("fs", "ls", "/"),
            ("journal", "verify"),
            ("journal", "dump"),
            ("journal", "checkpoint"),
            ("journal", "repair"),
            ("fsck",),
        ):
            proc = shoal(*args, home=tmp_path, expect=4)
            assert proc.stderr == (
                f"shoal: error: Shoal home {tmp_path} is in use by process {holder.pid}; stop it"
                " (or use its admin channel) before opening the home again\n"
            ), args
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    shoal("fs", "ls", "/", home=tmp_path)  # released: usable again


# -- fsck and bench -----------------------------------------------------------------------------


def test_fsck_clean(tmp_path: Path) -> None:
    build(tmp_path, files=3)
    out = shoal("fsck", home=tmp_path).stdout
    lines = out.splitlines()
    assert all(line.startswith("ok    ") for line in lines[:-1])
    for name in (
        "parent-links",
        "names",
        "no-cycles",
        "counts",
        "next-id",
        "mounts",
        "blocks",
        "staged",
        "persists",
        "pending-bytes",
        "ack-blocks",
        "listing-marks",
        "home-modes",
        "store-copies",
        "provisional-attrs",
        "xattrs",
        "store-moves",
        "orphans",
        "path-confs",
        "cache",
        "stores",
    ):
        assert f"ok    {name}" in out
    assert lines[-1] == "7 inodes at seq 6: clean"


def test_fsck_reports_broken_invariants(tmp_path: Path) -> None:
    build(tmp_path, files=3)
    shoal("journal", "checkpoint", home=tmp_path)
    [ckpt] = checkpoints(tmp_path)
    # A checkpoint that verifies but holds a state no operation could produce.
    rewrite_checkpoint(
        ckpt,
        "UPDATE meta SET value = 99 WHERE key = 'inode_count'",
        "INSERT INTO blocks VALUES (4242, 0, 0, 'mem', 10, 0)",
        "INSERT INTO persists VALUES (3, 7)",
        # an orphan (a file unlinked while open) that still has its name: inode 3 is /d/sub
        "INSERT INTO orphans VALUES (3, X'"
        + msgpack.packb([3, 2, "sub", 0o100644, 0, 0, 0, 1, 1, 0, 1, None]).hex()
        + "')",
        # a per-path default no PathConfSet could set: a relative prefix, a value that is none
        "INSERT INTO path_confs VALUES (CAST('data/out' AS BLOB), '{\"ttl\": \"soon\"}')",
    )
    proc = shoal("fsck", home=tmp_path, expect=1)
    out = proc.stdout
    assert "FAIL  counts" in out and "the tree counts 99 inodes but holds 7" in out
    assert "FAIL  blocks" in out and "inode 4242, which does not exist" in out
    assert "FAIL  persists" in out and "not a regular file" in out
    assert "FAIL  orphans" in out and "orphan 3 still has a name in the tree" in out
    assert "ok    parent-links" in out
    assert "FAIL  path-confs" in out and "prefix 'data/out' is not an absolute path" in out
    assert "path conf ttl = 'soon' is not valid" in out
    assert "FAIL  cache" in out and "1 missing or damaged blocks found" in out
    assert out.splitlines()[-1] == "99 inodes at seq 6: 6 of 30 checks failed"


def test_bench_journal_json(tmp_path: Path) -> None:
    proc = shoal("bench", "journal", "--json", "--inodes", "3000", "--seconds", "0.2")
    result = json.loads(proc.stdout)
    assert result["inodes"] == 3000
    assert result["state_inodes"] == 3000
    assert result["digests_match"] is True
    assert result["append_1_per_s"] > 0 and result["replay_per_s"] > 0


def test_inspect_expands_a_checkpoint_into_rows_with_paths(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    home = tmp_path / "h"
    build(home, files=5)
    shoal("journal", "inspect", "--out", str(tmp_path / "none.db"), home=home, expect=1)
    shoal("journal", "checkpoint", home=home)
    engine = open_engine(home)
    try:
        engine.ns.delete("/d/f0")  # after the checkpoint: not in what inspect shows
        expected = {engine.ns.path_of(n) for n in engine.state.tree.walk()} | {"/d/f0"}
    finally:
        engine.close(checkpoint=False)
    out = tmp_path / "state.db"
    shoal("journal", "inspect", "--out", str(out), home=home)
    conn = sqlite3.connect(out)
    paths = {p for (p,) in conn.execute("select path from inodes")}
    assert paths == expected
    assert conn.execute(
        "select type, symlink_target from inodes where path='/link'"
    ).fetchone() == (
        "symlink",
        "/d",
    )
    assert conn.execute("select count(*) from inodes where parent = 2").fetchone() == (6,)
    conn.close()


def test_fsck_finds_and_removes_temporary_files_of_dead_writers(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    me = tempfiles.this_writer()
    # This process's pid with another start time: an earlier process with the pid, gone.
    dead = tempfiles.name_for(dataclasses.replace(me, start=me.start + 1), "5" * 16)
    (ufs / dead).write_bytes(b"half a file")
    (ufs / ".shoal-tmp-notes").write_bytes(b"a user's own file")
    engine = open_engine()
    engine.mounts.mount("/", str(ufs))
    home = engine.storage.root  # type: ignore[attr-defined]
    engine.close()
    (ufs / dead).write_bytes(b"half a file")  # opening the mount may have swept it already

    out = shoal("fsck", home=home, expect=1).stdout
    assert "FAIL  stores" in out and dead in out and ".shoal-tmp-notes" not in out
    out = shoal("fsck", "--repair", home=home).stdout
    assert "fix   stores" in out and "1 removed" in out
    assert sorted(p.name for p in ufs.iterdir()) == [".shoal-tmp-notes"]
    assert "ok    stores" in shoal("fsck", home=home).stdout

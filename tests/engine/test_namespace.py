"""Namespace operations on a real home: results, POSIX errors, and that a reopen keeps all of it."""

from __future__ import annotations

import stat
from pathlib import Path

import apsw
import msgpack
import pytest

from engine import errors as err
from engine.engine import Engine
from engine.inode import COMPLETE, PINNED
from engine.snapshot import digest
from engine.state import block_size_of
from tests.cli.shoal_cli import rewrite_checkpoint
from tests.invariants import CheckedEngine, OpenEngine


def names(engine: Engine, path: str) -> list[str]:
    return [n.name for n in engine.ns.listdir(path)]


def reopen(open_engine: OpenEngine, engine: Engine) -> CheckedEngine:
    """Closes ``engine`` and opens its home again, checking the state came back the same."""
    before = digest(engine.state)
    engine.close()
    again = open_engine()
    assert digest(again.state) == before
    return again


def test_mkdir_and_mkdir_p(engine: Engine) -> None:
    ns = engine.ns
    d = ns.mkdir("/a", mode=0o700, uid=5, gid=6)
    assert d.is_dir and d.mode == stat.S_IFDIR | 0o700 and (d.uid, d.gid) == (5, 6)
    deep = ns.mkdir("/a/b/c", parents=True)
    assert ns.path_of(deep) == "/a/b/c"
    assert ns.mkdir("/a/b", parents=True) is ns.lookup("/a/b")  # -p: existing is fine
    assert ns.mkdir("/", parents=True).id == 1
    with pytest.raises(err.AlreadyExists):
        ns.mkdir("/a")
    with pytest.raises(err.AlreadyExists):
        ns.mkdir("/")
    with pytest.raises(err.NotFound):
        ns.mkdir("/x/y")
    ns.create("/a/f")
    with pytest.raises(err.NotADirectory):
        ns.mkdir("/a/f/g", parents=True)
    assert names(engine, "/a") == ["b", "f"]


def test_create_and_complete(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/d")
    f = ns.create("/d/f", mode=0o640, uid=7, gid=8)
    assert f.mode == stat.S_IFREG | 0o640 and f.size == 0 and not f.flags & COMPLETE
    with pytest.raises(err.AlreadyExists):
        ns.create("/d/f")
    with pytest.raises(err.NotFound):
        ns.create("/nope/f")
    with pytest.raises(err.NotADirectory):
        ns.create("/d/f/g")
    ns.complete(f.id, 10 << 20, 4 << 20)
    assert f.size == 10 << 20 and f.flags & COMPLETE and block_size_of(f) == 4 << 20
    with pytest.raises(err.InvalidArgument):
        ns.complete(f.id, -1, 4096)
    with pytest.raises(err.InvalidArgument):
        ns.complete(f.id, 1, 3000)
    with pytest.raises(err.IsADirectory):
        ns.complete(ns.lookup("/d").id, 1, 4096)
    with pytest.raises(err.NotFound):
        ns.complete(10_000, 1, 4096)


def test_rename_within_and_across_directories(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/a")
    ns.mkdir("/b")
    f = ns.create("/a/f")
    ns.rename("/a/f", "/a/g")
    assert names(engine, "/a") == ["g"] and ns.lookup("/a/g") is f
    ns.rename("/a/g", "/b/h")
    assert names(engine, "/a") == [] and ns.lookup("/b/h") is f
    ns.rename("/b", "/a/b")  # a directory moves with what is inside
    assert ns.path_of(f) == "/a/b/h"
    ns.rename("/a/b/h", "/a/b/h")  # onto itself: nothing happens
    assert ns.lookup("/a/b/h") is f
    with pytest.raises(err.NotFound):
        ns.rename("/a/missing", "/a/x")
    with pytest.raises(err.NotFound):
        ns.rename("/a/b/h", "/missing/x")


def test_rename_replaces_a_file_and_an_empty_directory(engine: Engine) -> None:
    ns = engine.ns
    f = ns.create("/f")
    old = ns.create("/g")
    ns.rename("/f", "/g")
    assert ns.lookup("/g") is f and engine.state.tree.find(old.id) is None
    ns.create("/h")
    with pytest.raises(err.AlreadyExists):
        ns.rename("/h", "/g", noreplace=True)
    ns.mkdir("/src/inner", parents=True)
    empty = ns.mkdir("/dst")
    ns.rename("/src", "/dst")
    assert names(engine, "/dst") == ["inner"] and engine.state.tree.find(empty.id) is None


def test_rename_errors_are_posix(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/full/x", parents=True)
    ns.mkdir("/d")
    ns.create("/f")
    with pytest.raises(err.NotEmpty):
        ns.rename("/d", "/full")
    with pytest.raises(err.NotADirectory):
        ns.rename("/d", "/f")  # a directory over a file
    with pytest.raises(err.IsADirectory):
        ns.rename("/f", "/d")  # a file over a directory
    with pytest.raises(err.InvalidArgument):
        ns.rename("/full", "/full/x/y")  # into itself
    with pytest.raises(err.InvalidArgument):
        ns.rename("/full", "/full/z")
    with pytest.raises(err.InvalidArgument):
        ns.rename("/", "/r")
    assert names(engine, "/") == ["d", "f", "full"]
    assert names(engine, "/full") == ["x"]


def test_name_rules(engine: Engine) -> None:
    ns = engine.ns
    ok = "n" * 255
    ns.create("/" + ok)
    ns.mkdir("/" + "\u00e9" * 127)  # 254 bytes of UTF-8
    with pytest.raises(err.NameTooLong):
        ns.create("/" + "n" * 256)
    with pytest.raises(err.NameTooLong):
        ns.mkdir("/" + "\u00e9" * 128)  # 128 characters, 256 bytes
    with pytest.raises(err.InvalidName):
        ns.create("/nul\0name")
    with pytest.raises(err.InvalidName):
        ns.rename("/" + ok, "/bad\0")
    with pytest.raises(err.InvalidArgument):
        ns.create("/a/../b")
    with pytest.raises(err.InvalidArgument):
        ns.create("relative")
    # '/' cannot be inside a name given as a path; by id it must be refused as a name.
    with pytest.raises(err.InvalidName):
        ns.create_in(1, "a/b", 0o644, 0, 0)
    with pytest.raises(err.InvalidName):
        ns.mkdir_in(1, "..", 0o755, 0, 0)
    before = digest(engine.state)
    with pytest.raises(err.NameTooLong):
        ns.mkdir("/new/parent/" + "x" * 256, parents=True)  # nothing of it may be made
    assert digest(engine.state) == before
    assert sorted(names(engine, "/")) == sorted([ok, "\u00e9" * 127])


def test_delete_and_recursive_delete(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/t/a/b", parents=True)
    leaf = ns.create("/t/a/b/f")
    ns.create("/t/g")
    with pytest.raises(err.NotEmpty):
        ns.delete("/t")
    count = engine.state.tree.count
    ns.delete("/t/g")
    ns.delete("/t", recursive=True)
    assert names(engine, "/") == [] and engine.state.tree.count == count - 5
    assert engine.state.tree.find(leaf.id) is None
    with pytest.raises(err.NotFound):
        ns.delete("/t")
    with pytest.raises(err.InvalidArgument):
        ns.delete("/")
    ns.mkdir("/empty")
    ns.delete("/empty")


def test_symlink(engine: Engine) -> None:
    ns = engine.ns
    link = ns.symlink("/l", "../some/where")
    assert link.is_symlink and link.size == len("../some/where") and link.ext is not None
    assert link.ext.target == "../some/where"
    with pytest.raises(err.InvalidArgument):
        ns.symlink("/m", "")
    with pytest.raises(err.AlreadyExists):
        ns.symlink("/l", "x")
    with pytest.raises(err.IsADirectory):
        ns.complete(link.id, 1, 4096)


def test_setattr(engine: Engine) -> None:
    ns = engine.ns
    f = ns.create("/f")
    ns.complete(f.id, 100, 4096)
    version = f.version
    ns.setattr("/f", mode=0o600, uid=3, gid=4, pinned=True, media=["ssd"], ttl_ms=1000)
    assert f.mode == stat.S_IFREG | 0o600 and (f.uid, f.gid) == (3, 4)
    assert f.flags & PINNED and f.ext is not None and f.ext.media == ["ssd"]
    assert (f.ext.ttl_ms, f.ext.ttl_action) == (1000, "free")
    ns.setattr("/f", size=5)
    assert f.size == 5 and f.version == version + 1
    ns.setattr("/f", pinned=False, ttl_ms=-1)
    assert not f.flags & PINNED and f.ext is None
    ns.mkdir("/d")
    with pytest.raises(err.IsADirectory):
        ns.setattr("/d", size=1)
    with pytest.raises(err.InvalidArgument):
        ns.setattr("/f", size=-1)
    with pytest.raises(err.InvalidArgument):
        ns.setattr("/f", colour="red")
    with pytest.raises(err.NotFound):
        ns.setattr("/missing", mode=0o644)
    ns.setattr("/d", mode=0o7777)
    assert ns.lookup("/d").mode == stat.S_IFDIR | 0o7777


def test_everything_survives_close_and_reopen(open_engine: OpenEngine) -> None:
    engine = open_engine()
    ns = engine.ns
    ns.mkdir("/data/train", parents=True)
    for i in range(20):
        f = ns.create(f"/data/train/part-{i:03d}", uid=i)
        ns.complete(f.id, i * 1000, 1 << 20)
    ns.rename("/data/train/part-000", "/data/first")
    ns.delete("/data/train/part-001")
    ns.symlink("/latest", "/data/train")
    ns.setattr("/data", pinned=True, media=["mem"])
    engine = reopen(open_engine, engine)
    try:
        assert len(names(engine, "/data/train")) == 18
        assert engine.ns.lookup("/data/first").size == 0
        assert engine.ns.lookup("/data/train/part-019").uid == 19
        engine.ns.create("/after-reopen")  # appending continues the log
        next_id = engine.state.tree.next_id
    finally:
        engine = reopen(open_engine, engine)
    try:
        assert names(engine, "/")[:2] == ["after-reopen", "data"]
        assert engine.state.tree.next_id == next_id  # ids are never reused
    finally:
        engine.close()


def test_reopen_without_final_checkpoint_replays_the_log(open_engine: OpenEngine) -> None:
    engine = open_engine()
    engine.ns.mkdir("/a/b/c", parents=True)
    engine.ns.create("/a/b/c/f")
    engine.ns.rename("/a/b", "/b")
    before = digest(engine.state)
    engine.close(checkpoint=False)
    again = open_engine()
    try:
        assert digest(again.state) == before
        report = again.journal.report
        assert report is not None and report.checkpoint is None and report.replayed == 5
    finally:
        again.close()


def test_a_second_open_of_the_same_home_is_refused(engine: Engine, home: Path) -> None:
    with pytest.raises(err.HomeLocked):
        Engine.open_home(str(home))


def test_a_checkpoint_in_the_first_chunk_format_still_loads(
    home: Path, open_engine: OpenEngine
) -> None:
    # Checkpoints written before the attribute palette (chunk format 1: every row carries its
    # own mode, uid, gid and flags) must give the same state.
    engine = open_engine()
    ns = engine.ns
    ns.mkdir("/a/b", parents=True)
    ns.mkdir("/z")
    for i in range(5):
        ns.create(f"/a/b/f{i}", uid=i, mode=0o600 + i)
    ns.rename("/a", "/z/a")  # a directory under a newer one: its parent comes later
    ns.symlink("/link", "/z/a/b")
    ns.setattr("/z", pinned=True, media=["mem"])
    before = digest(engine.state)
    engine.close()  # writes a checkpoint in the current format
    ckpt = sorted((home / "journal" / "checkpoints").glob("checkpoint-*.sqlite"))[-1]

    def to_format_1(conn: apsw.Connection) -> None:
        for first_id, blob in list(conn.execute("SELECT first_id, rows FROM inode_chunks")):
            palette, rows = msgpack.unpackb(blob, use_list=True)
            old = [
                [ino, parent, name, *palette[attrs][:3], size, mtime,
                 mtime if ctime is None else ctime, version, palette[attrs][3], ext]
                for ino, parent, name, attrs, size, mtime, ctime, version, ext in rows
            ]  # fmt: skip
            packed = msgpack.packb(old, use_bin_type=True)
            conn.execute("UPDATE inode_chunks SET rows = ? WHERE first_id = ?", (packed, first_id))
        conn.execute("DELETE FROM meta WHERE key = 'inode_chunk_format'")

    rewrite_checkpoint(ckpt, to_format_1)
    engine = open_engine()
    try:
        report = engine.journal.report
        assert report is not None
        assert report.checkpoint is not None and report.replayed == 0  # all from the checkpoint
        assert digest(engine.state) == before
        assert engine.ns.lookup("/z/a/b/f3").mode & 0o7777 == 0o603
    finally:
        engine.close()

"""A persisted file (or a directory holding some) renamed below a mount is moved in its store
only after the Rename is journaled (Rename.store_from, a pending store move ended by
StoreMoved; engine/storemove.py). A kill -9 at any step of the rename — before the entry,
before the store move, between one file's move and the next, before the old directories go,
before the move is journaled done — leaves, after a restart and a listing, exactly the names
and bytes from before the rename or from after it; and a later delete leaves nothing in the
store to come back. A store that is down fails the rename before anything is journaled; one
that fails after the entry leaves the rename done and its move pending, served from the old
path until the store takes it. Real engines on real homes over a local directory, real kill
-9s of a process stopped at one step."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import msgpack
import pytest

from engine.engine import Engine
from engine.errors import Unavailable
from engine.inode import PERSISTED
from engine.snapshot import digest
from engine.state import State
from journal import entries as E
from recovery.fsck import check_store_moves
from tests.cli.shoal_cli import shoal
from tests.crashes import killed_once_said
from tests.engine.test_ufsfirst_stale import files, listed, mounted, relisted, restarted
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore
from ufs.base import UfsAttrs
from ufs.errors import UfsUnavailable
from ufs.local import LocalUnderFS

PERSISTED_A = b"persisted-a, acknowledged, in the store"
CACHE_B = b"cache-b, only in the cache"

# A process that renames argv[3] to argv[4] and stops at one step of it, the instant a kill -9
# finds it in: "entry" as the Rename is proposed (nothing of it journaled), "move-N" once the
# store has made N file moves (move-0: before the first), "rmdir" as the store is first asked
# to remove a directory, "moved" as the first StoreMoved is proposed (the store done, the
# journal not told).
STOPPED = textwrap.dedent(
    """
    import sys, time
    from engine.commit import CommitGate
    from engine.engine import Engine
    from journal import entries as E
    from ufs.local import LocalUnderFS

    home, point, src, dst = sys.argv[1:5]
    moves = [0]

    def stop():
        print("STOPPED", flush=True)
        while True:
            time.sleep(60)

    commit, rename, rmdir = CommitGate.commit, LocalUnderFS.rename, LocalUnderFS.rmdir

    def committing(self, entry):
        if point == "entry" and isinstance(entry, E.Rename):
            stop()
        if point == "moved" and isinstance(entry, E.StoreMoved):
            stop()
        return commit(self, entry)

    def renaming(self, a, b):
        if point == f"move-{moves[0]}":
            stop()
        rename(self, a, b)
        moves[0] += 1
        if point == f"move-{moves[0]}":
            stop()

    def removing(self, path):
        if point == "rmdir":
            stop()
        rmdir(self, path)

    CommitGate.commit = committing
    LocalUnderFS.rename = renaming
    LocalUnderFS.rmdir = removing
    engine = Engine.open_home(home)
    engine.fs.rename(src, dst)
    print("FINISHED", flush=True)
    """
)


def tree(engine: Engine, path: str = "/m") -> dict[str, bytes]:
    """Every file below ``path`` (relative to it) with its bytes read back through the engine;
    a directory as its name with a trailing slash."""
    out: dict[str, bytes] = {}
    for node in engine.sync.listdir(path):
        child = f"{path}/{node.name}"
        rel = child[len("/m/") :]
        if node.children is not None:
            out[rel + "/"] = b""
            out.update(tree(engine, child))
        else:
            out[rel] = engine.fs.read(child, 0, 1 << 20)
    return out


def stored(store: LocalStore) -> dict[str, bytes]:
    return {k: store.get(k) for k in files(store)}


def a_over_b(tmp_path: Path, home: Path, open_engine: OpenEngine) -> LocalStore:
    """/m/a persisted (THROUGH), /m/b only in the cache (MUST_CACHE)."""
    store = LocalStore(tmp_path / "ufs")
    engine = mounted(open_engine, home, store)
    engine.fs.write_file("/m/a", io.BytesIO(PERSISTED_A), write_type="THROUGH")
    engine.fs.write_file("/m/b", io.BytesIO(CACHE_B), write_type="MUST_CACHE")
    assert engine.sync.lookup("/m/a").flags & PERSISTED
    assert not engine.sync.lookup("/m/b").flags & PERSISTED
    engine.close()
    return store


FILE_POINTS = ["entry", "move-0", "move-1", "moved"]


@pytest.mark.parametrize("point", FILE_POINTS)
def test_kill9_renaming_a_persisted_file_over_a_cache_only_one(
    point: str, tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    store = a_over_b(tmp_path, home, open_engine)
    killed_once_said(STOPPED, str(home), point, "/m/a", "/m/b", said="STOPPED")

    engine = relisted(open_engine, home)
    if point == "entry":  # never journaled: both names as they were
        assert tree(engine) == {"a": PERSISTED_A, "b": CACHE_B}
        engine.close()
        return
    # Journaled: b is a's file, byte for byte, and the store holds it under b alone.
    assert tree(engine) == {"b": PERSISTED_A}
    assert stored(store) == {"b": PERSISTED_A}
    assert not engine.state.store_moves
    engine.fs.delete("/m/b")
    engine = restarted(engine, open_engine, home)
    assert tree(engine) == {}  # nothing of a, nor of b, comes back
    assert files(store) == set()
    engine.close()


@pytest.mark.parametrize("point", FILE_POINTS)
def test_kill9_renaming_a_persisted_file_to_a_free_name_keeps_its_inode(
    point: str, tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = mounted(open_engine, home, store)
    engine.fs.write_file("/m/a", io.BytesIO(PERSISTED_A), write_type="THROUGH")
    node = engine.sync.lookup("/m/a")
    engine.fs.set_attrs(node, mode=0o600, uid=7)  # in the store too: a relist follows it
    engine.ns.setattr("/m/a", pinned=True)
    ino = node.id
    engine.close()
    killed_once_said(STOPPED, str(home), point, "/m/a", "/m/c", said="STOPPED")

    engine = relisted(open_engine, home)
    name = "a" if point == "entry" else "c"
    assert tree(engine) == {name: PERSISTED_A}
    assert stored(store) == {name: PERSISTED_A}
    node = engine.sync.lookup(f"/m/{name}")
    # The journaled file, not one loaded anew from the store: its inode and attributes.
    assert (node.id, node.mode & 0o7777, node.uid, node.flags & PERSISTED) == (
        ino, 0o600, 7, PERSISTED
    )  # fmt: skip
    engine.fs.delete(f"/m/{name}")
    engine = restarted(engine, open_engine, home)
    assert tree(engine) == {} and files(store) == set()
    engine.close()


DIR_BEFORE = {
    "d/": b"", "d/x": b"persisted-x", "d/y": b"persisted-y", "d/s/": b"", "d/s/z": b"persisted-z",
    "d/c": CACHE_B,
}  # fmt: skip
DIR_AFTER = {"e" + k[1:]: v for k, v in DIR_BEFORE.items()}
DIR_POINTS = ["entry", "move-0", "move-1", "move-2", "rmdir", "moved"]


def directory_before(open_engine: OpenEngine, home: Path, store: LocalStore) -> Engine:
    """/m/d holding DIR_BEFORE: its files persisted (THROUGH), CACHE_B's only in the cache."""
    engine = mounted(open_engine, home, store)
    engine.fs.makedirs("/m/d/s")
    for rel, data in DIR_BEFORE.items():
        if not rel.endswith("/"):
            kind = "MUST_CACHE" if data == CACHE_B else "THROUGH"
            engine.fs.write_file(f"/m/{rel}", io.BytesIO(data), write_type=kind)
    return engine


@pytest.mark.parametrize("point", DIR_POINTS)
def test_kill9_renaming_a_directory_of_persisted_files(
    point: str, tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """Three persisted files moved one by one, and one only in the cache: a kill between two
    of the moves leaves the whole directory under one name, never part of it under each."""
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = directory_before(open_engine, home, store)
    engine.close()
    killed_once_said(STOPPED, str(home), point, "/m/d", "/m/e", said="STOPPED")

    engine = relisted(open_engine, home)
    want = DIR_BEFORE if point == "entry" else DIR_AFTER
    assert tree(engine) == want
    top = "d" if point == "entry" else "e"
    assert stored(store) == {k: v for k, v in want.items() if not k.endswith("/") and v != CACHE_B}
    assert {k for k in store.keys() if k.endswith("/")} == {f"{top}/", f"{top}/s/"}
    engine.fs.delete(f"/m/{top}", recursive=True)
    engine = restarted(engine, open_engine, home)
    assert tree(engine) == {} and store.keys() == set()
    engine.close()


class Refusals:
    """What the local store refuses (patched onto LocalUnderFS, so that engines opened later
    meet it from their start): ``moves`` its renames (the store went away between the
    rename's checks and its move), ``changes`` every rename and mkdir (the store is down)."""

    moves = False
    changes = False


_rename, _mkdir = LocalUnderFS.rename, LocalUnderFS.mkdir


def _refused_rename(self: LocalUnderFS, src: str, dst: str) -> None:
    if Refusals.moves or Refusals.changes:
        raise UfsUnavailable(f"{src}: the store refuses renames")
    _rename(self, src, dst)


def _refused_mkdir(self: LocalUnderFS, path: str, attrs: UfsAttrs | None = None) -> None:
    if Refusals.changes:
        raise UfsUnavailable(f"{path}: the store refuses changes")
    _mkdir(self, path, attrs)


@pytest.fixture
def refusals(monkeypatch: pytest.MonkeyPatch) -> type[Refusals]:
    monkeypatch.setattr(Refusals, "moves", False)
    monkeypatch.setattr(Refusals, "changes", False)
    monkeypatch.setattr(LocalUnderFS, "rename", _refused_rename)
    monkeypatch.setattr(LocalUnderFS, "mkdir", _refused_mkdir)
    return Refusals


def test_a_store_down_fails_the_rename_before_anything_is_journaled(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine, refusals: type[Refusals]
) -> None:
    home = ssd_home()
    store = a_over_b(tmp_path, home, open_engine)
    refusals.changes = True
    engine = open_engine(home)
    last = engine.journal.last_seq
    with pytest.raises(Unavailable):
        engine.fs.rename("/m/a", "/m/b")
    assert engine.journal.last_seq == last
    assert tree(engine) == {"a": PERSISTED_A, "b": CACHE_B}
    assert stored(store) == {"a": PERSISTED_A}
    engine.close()


def test_a_move_the_store_refuses_after_the_entry_completes_once_it_is_back(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine, refusals: type[Refusals]
) -> None:
    """The rename is acknowledged; while its move is pending (across a checkpoint and a
    restart that cannot complete it either), b reads a's bytes from the old path, a listing
    neither drops b nor loads a as a new file; once the store takes moves, the next listing
    completes it."""
    home = ssd_home()
    store = a_over_b(tmp_path, home, open_engine)
    refusals.moves = True
    engine = open_engine(home)
    engine.fs.rename("/m/a", "/m/b")
    node = engine.sync.lookup("/m/b")
    assert engine.state.store_moves == {node.id: ("a", node.ext.fingerprint)}  # type: ignore[union-attr]
    assert stored(store) == {"a": PERSISTED_A}
    engine.checkpoint()
    engine.close()

    engine = open_engine(home)  # its start cannot complete the move either
    assert node.id in engine.state.store_moves
    engine.sync.sync("/m", recursive=True)
    assert tree(engine) == {"b": PERSISTED_A}
    assert engine.fs.read("/m/b", 0, 100, read_type="NO_CACHE") == PERSISTED_A
    # A new file at the old name: written through the store, it would write over b's content
    # there (refused); written to the cache, it is taken, and its upload waits for the move.
    with pytest.raises(Unavailable, match="'a'"):
        engine.fs.write_file("/m/a", io.BytesIO(b"new a"), write_type="THROUGH")
    engine.fs.write_file("/m/a", io.BytesIO(b"new a"), write_type="ASYNC_THROUGH")
    assert engine.persister is not None
    engine.persister.drain()
    assert stored(store) == {"a": PERSISTED_A}

    refusals.moves = False
    engine.sync.sync("/m")
    assert not engine.state.store_moves
    assert stored(store) == {"b": PERSISTED_A}
    engine = restarted(engine, open_engine, home)  # the new a's upload resumed
    assert engine.persister is not None
    engine.persister.drain()
    assert tree(engine) == {"a": b"new a", "b": PERSISTED_A}
    assert stored(store) == {"a": b"new a", "b": PERSISTED_A}
    engine.close()


def test_a_move_that_cannot_complete_is_reported_and_the_file_can_be_deleted(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine, refusals: type[Refusals]
) -> None:
    home = ssd_home()
    store = a_over_b(tmp_path, home, open_engine)
    refusals.moves = True
    engine = open_engine(home)
    engine.fs.rename("/m/a", "/m/b")
    engine.close()
    out = shoal("fsck", home=home).stdout
    assert "pending store move" in out and "(inode" in out and "clean" in out
    store.delete("a")  # lost from the store by hand: at neither path
    failed = shoal("fsck", home=home, expect=None)
    assert failed.returncode != 0
    assert "store move cannot complete" in failed.stdout and "at neither path" in failed.stdout
    refusals.moves = False

    engine = relisted(open_engine, home)
    ino = engine.sync.lookup("/m/b").id
    assert ino in engine.state.store_moves  # left pending, not taken for done
    assert listed(engine) == ["b"]
    engine.fs.delete("/m/b")
    assert not engine.state.store_moves
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == [] and files(store) == set()
    engine.close()


def test_a_rename_written_before_store_from_existed_replays() -> None:
    payload = msgpack.packb([5, 1, "a", 1, "b", 10, None, None], use_bin_type=True)
    entry = E.decode(E.TYPE_CODES[E.Rename], payload)
    assert entry == E.Rename(5, 1, "a", 1, "b", 10, None, None, None)


def test_pending_moves_apply_and_fsck() -> None:
    state = State()
    state.apply(E.MkDir(2, 1, "d", 0o755, 0, 0, 1), 1)
    state.apply(E.CreateFile(3, 2, "x", 0o644, 0, 0, 1), 2)
    state.apply(E.UfsFingerprint(3, "f3", 1, 1, 1, 4096), 3)
    state.apply(E.CreateFile(4, 2, "c", 0o644, 0, 0, 1), 4)  # not persisted: nothing to move
    before = digest(State())
    state.apply(E.Rename(2, 1, "d", 1, "e", 5, None, None, "d"), 5)
    assert state.store_moves == {2: ("d", ""), 3: ("d/x", "f3")}
    assert digest(State()) == before  # states without pending moves keep their digests
    # Below no mount: nothing would ever complete them.
    assert check_store_moves(state) == [
        "inode 2 ('e'): its store move from 'd' is pending but it is below no mount",
        "inode 3 ('x'): its store move from 'd/x' is pending but it is below no mount",
    ]
    state.apply(E.StoreMoved(3, 6), 6)
    state.apply(E.Delete(2, 1, "e", 7), 7)
    assert state.store_moves == {}


def test_a_directory_move_the_store_refuses_stays_whole_until_it_completes(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine, refusals: type[Refusals]
) -> None:
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = directory_before(open_engine, home, store)
    refusals.moves = True
    engine.fs.rename("/m/d", "/m/e")
    assert len(engine.state.store_moves) == 5  # e, e/s, and the three persisted files
    engine.close()

    engine = relisted(open_engine, home)  # the start and the listing cannot move anything
    assert tree(engine) == DIR_AFTER
    with pytest.raises(Unavailable, match="refuses renames"):
        engine.fs.rename("/m/e", "/m/f")  # a second move on top of a pending one: the store
    with pytest.raises(Unavailable, match="'d"):
        engine.fs.mkdir("/m/d")  # the store still holds e's files under d
    assert tree(engine) == DIR_AFTER

    refusals.moves = False
    engine.sync.sync("/m", recursive=True)
    assert not engine.state.store_moves
    assert tree(engine) == DIR_AFTER
    assert stored(store) == {
        k: v for k, v in DIR_AFTER.items() if not k.endswith("/") and v != CACHE_B
    }
    engine.fs.rename("/m/e", "/m/d")  # and back: nothing of it left under e
    engine = restarted(engine, open_engine, home)
    assert tree(engine) == DIR_BEFORE
    assert {k for k in store.keys() if k.endswith("/")} == {"d/", "d/s/"}
    engine.close()

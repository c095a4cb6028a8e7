"""A rename below a mount of a file whose content the store lacks (written MUST_CACHE, or never
written) over a file the store holds: the replaced file's copy is removed from the store only
once the rename is journaled, and the entry records it on the moved file (Rename.stale). A
kill -9 at any of the rename's steps leaves the old names or the new ones, never the replaced
file lost to a rename that was not acknowledged; and the copy left behind by a kill or by a
store that refused its removal never comes back once the moved file is deleted. Real engines
on real homes over a local directory, real kill -9s of a process stopped at one step."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import BinaryIO

import msgpack
import pytest

from engine.inode import PERSISTED
from engine.state import State
from journal import entries as E
from recovery.fsck import check_store_copies
from tests.crashes import killed_once_said
from tests.engine.test_ufsfirst_stale import files, listed, mounted, relisted, restarted
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore
from ufs.base import UfsAttrs, UfsStatus
from ufs.errors import UfsUnavailable
from ufs.local import LocalUnderFS

NEW = b"NEW-a, only in the cache"
OLD_B = b"old-b, acknowledged, in the store"

# A process that renames /m/a over /m/b and stops at one step of it, the instant a kill -9
# finds it in: "entry" as the Rename is proposed to the commit gate (nothing of it in the
# journal), "before-delete" / "after-delete" as the store is asked to delete a file.
STOPPED = textwrap.dedent(
    """
    import sys, time
    from engine.commit import CommitGate
    from engine.engine import Engine
    from journal import entries as E
    from ufs.errors import UfsError
    from ufs.local import LocalUnderFS

    home, point = sys.argv[1:3]

    def stop():
        print("STOPPED", flush=True)
        while True:
            time.sleep(60)

    commit, delete = CommitGate.commit, LocalUnderFS.delete

    def refused(self, path, source, attrs=None):
        raise UfsError(f"{path}: uploads are refused in this test")

    if "--no-uploads" in sys.argv:  # a pending upload stays pending
        LocalUnderFS.write = refused

    def committing(self, entry):
        if point == "entry" and isinstance(entry, E.Rename):
            stop()
        return commit(self, entry)

    def deleting(self, path):
        if point == "before-delete":
            stop()
        delete(self, path)
        if point == "after-delete":
            stop()

    CommitGate.commit = committing
    LocalUnderFS.delete = deleting
    engine = Engine.open_home(home)
    engine.fs.rename("/m/a", "/m/b")
    print("FINISHED", flush=True)
    """
)


def a_over_b(tmp_path: Path, home: Path, open_engine: OpenEngine, written: bool) -> LocalStore:
    """/m/a (``written``: NEW, MUST_CACHE; else created and never written) beside /m/b, whose
    OLD_B is in a local store."""
    store = LocalStore(tmp_path / "ufs")
    engine = mounted(open_engine, home, store)
    engine.fs.write_file("/m/b", io.BytesIO(OLD_B), write_type="THROUGH")
    if written:
        engine.fs.write_file("/m/a", io.BytesIO(NEW), write_type="MUST_CACHE")
    else:
        engine.ns.create("/m/a")
    node = engine.sync.lookup("/m/a")
    assert not node.flags & PERSISTED and node.ext is None and not engine.state.persists
    engine.close()
    return store


@pytest.mark.parametrize("written", [True, False], ids=["must-cache", "never-written"])
def test_kill9_before_the_rename_is_journaled_keeps_the_replaced_file(
    written: bool, tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    store = a_over_b(tmp_path, home, open_engine, written)
    killed_once_said(STOPPED, str(home), "entry", said="STOPPED")

    # The rename was never journaled: both names are as they were, b byte for byte.
    engine = relisted(open_engine, home)
    assert listed(engine) == ["a", "b"]
    assert engine.fs.read("/m/b", 0, 100) == OLD_B
    assert store.get("b") == OLD_B
    assert engine.fs.read("/m/a", 0, 100) == (NEW if written else b"")
    engine.close()


@pytest.mark.parametrize("written", [True, False], ids=["must-cache", "never-written"])
def test_kill9_after_the_rename_is_journaled_before_the_copy_goes(
    written: bool, tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """The entry is durable, the replaced file's copy still in the store under the new name:
    the listing does not take it for the moved file's content, and the moved file's delete
    removes it, so nothing of the replaced file comes back."""
    home = ssd_home()
    store = a_over_b(tmp_path, home, open_engine, written)
    killed_once_said(STOPPED, str(home), "before-delete", said="STOPPED")
    assert files(store) == {"b"} and store.get("b") == OLD_B

    engine = relisted(open_engine, home)
    assert listed(engine) == ["b"]
    assert engine.fs.read("/m/b", 0, 100) == (NEW if written else b"")
    node = engine.sync.lookup("/m/b")
    assert not node.flags & PERSISTED and node.size == (len(NEW) if written else 0)
    engine.fs.delete("/m/b")
    assert files(store) == set()
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []
    engine.close()


def test_kill9_once_the_copy_is_gone_keeps_the_rename(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    store = a_over_b(tmp_path, home, open_engine, written=True)
    killed_once_said(STOPPED, str(home), "after-delete", said="STOPPED")
    assert files(store) == set()

    engine = relisted(open_engine, home)
    assert listed(engine) == ["b"]
    assert engine.fs.read("/m/b", 0, 100) == NEW
    engine.close()


def test_a_file_never_written_does_not_take_an_unknown_replaced_copy(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """/m/b's upload landed but a kill cut its Persisted: the store holds a copy the state has
    no fingerprint of. A file created and never written, renamed over it with a kill before
    that copy is removed, must not take it for its content at the next listing."""
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = mounted(open_engine, home, store)
    assert engine.persister is not None
    engine.persister.close()  # its upload stays pending in the journal
    engine.fs.write_file("/m/b", io.BytesIO(OLD_B), write_type="ASYNC_THROUGH")
    store.put("b", OLD_B)  # the upload landed; its Persisted never made it to the journal
    engine.ns.create("/m/a")
    engine.close()
    killed_once_said(STOPPED, str(home), "before-delete", "--no-uploads", said="STOPPED")
    assert files(store) == {"b"}

    engine = relisted(open_engine, home)
    assert listed(engine) == ["b"]
    assert engine.fs.read("/m/b", 0, 100) == b""
    assert engine.sync.lookup("/m/b").size == 0
    engine.fs.delete("/m/b")
    assert files(store) == set()
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []
    engine.close()


class RefusingStore(LocalUnderFS):
    """A local directory that refuses writes while ``down`` and deletes of the paths in
    ``kept`` (a store that went away between two calls): lists, stats and reads answer."""

    down = False
    kept: frozenset[str] = frozenset()

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        if RefusingStore.down:
            raise UfsUnavailable(f"{path}: the store refuses writes")
        return super().write(path, source, attrs)

    def delete(self, path: str) -> None:
        if path in RefusingStore.kept:
            raise UfsUnavailable(f"{path}: the store refuses deletes")
        super().delete(path)


def test_a_copy_the_store_refused_to_remove_never_comes_back(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file with its upload pending renamed over a persisted one while the store refuses the
    replaced copy's removal; the file is then rewritten MUST_CACHE (its upload is dropped as
    superseded) and deleted once the store is back: the replaced file must not reappear."""
    monkeypatch.setattr(RefusingStore, "down", True)
    monkeypatch.setattr(RefusingStore, "kept", frozenset())
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = open_engine(home)
    engine.mounts.opener = lambda uri, options, hidden: RefusingStore(uri)
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    RefusingStore.down = False
    engine.fs.write_file("/m/b", io.BytesIO(OLD_B), write_type="THROUGH")
    RefusingStore.down = True
    engine.fs.write_file("/m/a", io.BytesIO(NEW), write_type="ASYNC_THROUGH")
    assert engine.persister is not None
    engine.persister.drain()  # the upload failed: it stays pending
    assert engine.state.persists
    RefusingStore.kept = frozenset({"b"})
    engine.fs.rename("/m/a", "/m/b")  # journaled; the replaced copy's removal refused
    assert store.get("b") == OLD_B
    engine.fs.write_file("/m/b", io.BytesIO(b"v3, cache only"), write_type="MUST_CACHE")
    engine.close()

    RefusingStore.down, RefusingStore.kept = False, frozenset()
    engine = open_engine(home)
    assert engine.persister is not None
    engine.persister.drain()  # the pending upload, superseded, is dropped
    assert not engine.state.persists
    engine.fs.delete("/m/b")
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []  # OLD_B did not come back
    assert files(store) == set()
    engine.close()


def test_a_rename_written_before_stale_existed_replays() -> None:
    """A Rename of 7 fields (journals written before ``stale``) decodes with None."""
    payload = msgpack.packb([5, 1, "a", 1, "b", 10, 4], use_bin_type=True)
    entry = E.decode(E.TYPE_CODES[E.Rename], payload)
    assert entry == E.Rename(5, 1, "a", 1, "b", 10, 4, None)


def test_fsck_names_a_store_copy_below_no_mount() -> None:
    state = State()
    state.apply(E.CreateFile(2, 1, "f", 0o644, 0, 0, 1), 1)
    state.apply(E.CreateFile(3, 1, "g", 0o644, 0, 0, 1), 2)
    assert check_store_copies(state) == []
    state.apply(E.Rename(2, 1, "f", 1, "g", 3, 3, "etag-g"), 3)
    assert check_store_copies(state) == [
        "inode 2 ('g'): UFS fingerprint 'etag-g' (a stale copy it is to remove) but it is"
        " below no mount"
    ]

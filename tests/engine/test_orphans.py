"""Files unlinked while open (engine/openfiles.py): the engine's rules, on real files.

A regular file losing its last name while the frontend holds a handle lives on as an orphan:
nameless, its blocks kept, readable by id, its upload called off; its last release drops it
and its tier files. A restart (no handle survives one) releases every orphan, from a
checkpoint or from replay, and fsck's ``orphans`` check holds throughout."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.cache.tiers import TIER_MARK
from engine.errors import IsADirectory, NotFound, Refused, StaleHandle
from engine.posix import Caller
from engine.snapshot import digest
from journal import entries as E
from recovery.orphancheck import check_orphans
from tests.engine.content import content
from tests.homes import SsdHome
from tests.invariants import CheckedEngine, OpenEngine, assert_fsck_clean
from tests.ufs.stores import Store


def _tier_files(tmp_path: Path) -> set[str]:
    """The SSD tier's block files (its mark, engine/cache/tierclaim.py, is not one)."""
    return {str(p) for p in (tmp_path / "ssd").rglob("*") if p.is_file() and p.name != TIER_MARK}


def _mounted(open_engine: OpenEngine, ssd_home: SsdHome, store: Store) -> CheckedEngine:
    engine = open_engine(ssd_home())
    engine.mounts.mount("/", store.uri, store.options)
    return engine


def test_an_open_file_unlinked_lives_until_its_last_release(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine, tmp_path: Path
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    fs = engine.fs
    data = content(200_000)
    node = fs.write_file("/f", io.BytesIO(data), write_type="MUST_CACHE")
    fs.opened(node.id)
    fs.opened(node.id)
    before = _tier_files(tmp_path)
    assert before
    fs.delete("/f")
    assert fs.find_inode(node.id) is None and node.id in engine.state.orphans
    assert fs.nlink(fs.still_there(node.id)) == 0
    assert fs.read_node(fs.still_there(node.id), 0, len(data)) == data
    fs.setattr_of(node.id, mode=0o600)
    assert fs.inode(node.id).mode & 0o7777 == 0o600
    assert_fsck_clean(engine)
    fs.released(node.id)  # one handle still open
    assert node.id in engine.state.orphans and _tier_files(tmp_path) == before
    fs.released(node.id)
    assert node.id not in engine.state.orphans and node.id not in engine.state.blocks
    assert not _tier_files(tmp_path)
    with pytest.raises(StaleHandle):
        fs.still_there(node.id)
    assert "f" not in store.keys()


def test_a_read_only_open_counts_as_a_handle_and_refuses_what_it_cannot_open(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    fs = engine.fs
    node = fs.write_file("/f", io.BytesIO(b"x" * 100), write_type="MUST_CACHE")
    directory = fs.mkdir("/d")

    def open_reading(ino: int) -> None:  # what the FUSE layer's read-only open asks
        fs.open_inode(ino, False)
        fs.opened(ino)

    open_reading(node.id)
    fs.delete("/f")  # open: it lives on as an orphan, and may be opened again as one
    assert node.id in engine.state.orphans
    open_reading(node.id)
    assert not fs.closed(node.id) and fs.closed(node.id)  # the second close was its last
    fs.release_orphan(node.id)
    assert node.id not in engine.state.orphans
    with pytest.raises(IsADirectory):
        open_reading(directory.id)
    with pytest.raises(NotFound):
        open_reading(10_000)


def test_a_closed_file_unlinked_goes_at_once(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    node = engine.fs.write_file("/f", io.BytesIO(b"x" * 1000), write_type="MUST_CACHE")
    engine.fs.opened(node.id)
    engine.fs.released(node.id)
    engine.fs.delete("/f")
    assert not engine.state.orphans and node.id not in engine.state.blocks


def test_a_hard_linked_file_unlinked_while_open_is_no_orphan(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    node = engine.fs.write_file("/a", io.BytesIO(b"shared"), write_type="MUST_CACHE")
    engine.fs.link_as(_root(), node.id, 1, "b")
    engine.fs.opened(node.id)
    engine.fs.delete("/a")
    assert not engine.state.orphans and engine.fs.nlink(engine.fs.inode(node.id)) == 1
    engine.fs.released(node.id)
    assert engine.fs.read("/b", 0, 100) == b"shared"


def test_an_orphan_upload_is_called_off(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    persister = engine.persister
    assert persister is not None
    with persister.hold([1]):  # the upload waits: still pending when the file is unlinked
        node = engine.fs.write_file("/up", io.BytesIO(b"y" * 5000), write_type="ASYNC_THROUGH")
        assert node.id in engine.state.persists
        engine.fs.opened(node.id)
        engine.fs.delete("/up")
        assert node.id not in engine.state.persists and node.id in engine.state.orphans
    persister.drain()
    assert "up" not in store.keys()
    engine.fs.released(node.id)
    assert "up" not in store.keys()


@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_restart_releases_every_orphan(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine, tmp_path: Path, checkpoint: bool
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    home = engine.storage.root  # type: ignore[attr-defined]
    node = engine.fs.write_file("/f", io.BytesIO(content(150_000)), write_type="MUST_CACHE")
    engine.fs.opened(node.id)
    engine.fs.delete("/f")
    if checkpoint:  # the orphan and its blocks are carried by the checkpoint
        engine.checkpoint()
    live = digest(engine.state)
    # A crash with the handle open: the journal is left as it is, no release journaled.
    engine.close(checkpoint=False)
    inspect = open_engine(home, reconcile=False)
    assert digest(inspect.state) == live and node.id in inspect.state.orphans
    assert not check_orphans(inspect.state)
    inspect.close(checkpoint=False)
    again = open_engine(home)
    assert not again.state.orphans and node.id not in again.state.blocks
    assert not _tier_files(tmp_path)
    assert_fsck_clean(again)
    again.close()


def test_check_orphans_names_what_is_wrong(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    node = engine.fs.write_file("/f", io.BytesIO(b"z" * 10), write_type="MUST_CACHE")
    engine.fs.opened(node.id)
    engine.fs.delete("/f")
    with engine.gate.lock:
        engine.state.persists[node.id] = node.version  # what no entry may do
        assert check_orphans(engine.state) == [
            f"orphan {node.id} has an upload pending: nothing of it may reach a store"
        ]
        del engine.state.persists[node.id]
    engine.fs.released(node.id)


def test_entries_that_would_break_an_orphan_are_refused(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine = _mounted(open_engine, ssd_home, store)
    fs = engine.fs
    d = fs.mkdir("/d")
    node = fs.write_file("/f", io.BytesIO(b"z" * 10), write_type="MUST_CACHE")
    with engine.gate.lock:
        with pytest.raises(Refused, match="not a regular file"):
            engine.gate.commit(E.Delete(d.id, 1, "d", 1, True))
        with pytest.raises(Refused, match="not an orphan"):
            engine.gate.commit(E.OrphanReleased(node.id, 1))
    fs.opened(node.id)
    fs.delete("/f")
    with engine.gate.lock:
        for entry in (
            E.Link(node.id, 1, "back", 1),
            E.PersistRequested(node.id, node.version, 1),
            E.StoreCopy(node.id, "x", 1),
        ):
            with pytest.raises(Refused):
                engine.gate.commit(entry)
    fs.released(node.id)


def _root() -> Caller:
    return Caller(0, 0, 0o022)

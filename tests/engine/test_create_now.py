"""A new file created on the event loop (``FileSystem.create_now``, what the FUSE frontend's
CREATE calls first): its CreateFile committed without a wait or a thread, with create's rules;
declined, nothing done, where it would wait (the lock taken, a directory to list from its
store first); and whether its spool is in the store (only then a thread makes one)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import AlreadyExists
from engine.posix import Caller
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.locks import held_elsewhere
from tests.ufs.stores import LocalStore

USER = Caller(1000, 1001, umask=0o027)


def _mounted(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine, write_type: str
) -> tuple[Engine, LocalStore]:
    store = LocalStore(tmp_path / "ufs")
    engine = open_engine(ssd_home())
    engine.fs.makedirs("/m", mode=0o777)
    engine.mounts.mount("/m", store.uri, {**store.options, "write_type": write_type})
    return engine, store


def test_create_now_commits_the_name_with_creates_rules(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine, store = _mounted(tmp_path, ssd_home, open_engine, "ASYNC_THROUGH")
    try:
        fs = engine.fs
        parent = engine.sync.lookup("/m")
        made = fs.create_now(USER, parent.id, "f", 0o666)
        assert made is not None
        seq, node = made
        fs.wait_acknowledged(seq)
        assert engine.sync.lookup("/m/f") is node
        assert (node.uid, node.gid, stat.S_IMODE(node.mode)) == (1000, 1001, 0o640)
        assert not fs.spools_in_store(node)  # ASYNC_THROUGH: spooled in the home
        assert not (store.root / "f").exists()  # only the name is journaled
        with pytest.raises(AlreadyExists):
            fs.create_now(USER, parent.id, "f", 0o666)
    finally:
        engine.close()
    engine = open_engine()
    try:
        again = engine.sync.lookup("/m/f")
        assert (again.uid, again.gid, stat.S_IMODE(again.mode)) == (1000, 1001, 0o640)
    finally:
        engine.close()


def test_create_now_declines_what_would_wait(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine, store = _mounted(tmp_path, ssd_home, open_engine, "THROUGH")
    try:
        fs = engine.fs
        os.mkdir(store.root / "unlisted")
        parent = engine.sync.lookup("/m")
        unlisted = parent.children["unlisted"]  # type: ignore[index]
        assert fs.create_now(USER, unlisted.id, "g", 0o644) is None  # its listing: in a thread
        assert "g" not in (unlisted.children or {})

        with held_elsewhere(engine.ns.lock):
            assert fs.create_now(USER, parent.id, "h", 0o644) is None  # never waits for it
        assert "h" not in parent.children  # type: ignore[operator]

        made = fs.create_now(USER, parent.id, "h", 0o644)
        assert made is not None
        fs.wait_acknowledged(made[0])
        assert fs.spools_in_store(made[1])  # THROUGH: the store holds its spool
    finally:
        engine.close()

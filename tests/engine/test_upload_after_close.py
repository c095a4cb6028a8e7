"""tar's way of writing a file (create, write, utimens, chown, chmod, close) with
ASYNC_THROUGH: the upload waits for the last writer's close, so the attribute changes before it
meet no upload under way (each would call it off and wait for it); and those changes, of the
journal only, are committed without a wait (``setattr_now``, the event loop's path)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from engine.engine import Engine
from engine.posix import Caller
from engine.state import PERSISTED
from tests.engine.content import content
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.locks import held_elsewhere
from tests.ufs.stores import LocalStore

ROOT = Caller(0, 0, umask=0o022)
MTIME = 1_400_000_000_000_000_000


def _mounted(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine, write_type: str
) -> tuple[Engine, LocalStore]:
    """An engine with a local store mounted at /m with ``write_type``."""
    store = LocalStore(tmp_path / "ufs")
    engine = open_engine(ssd_home())
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, {**store.options, "write_type": write_type})
    return engine, store


def test_an_async_upload_waits_for_the_last_writers_close(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine, store = _mounted(tmp_path, ssd_home, open_engine, "ASYNC_THROUGH")
    try:
        fs = engine.fs
        node = fs.create_as(ROOT, engine.sync.lookup("/m").id, "f", 0o600)
        fs.opened(node.id, writing=True)
        fs.opened(node.id)  # a reader too: only writers hold the upload back
        data = content(3)
        assert fs.commit_content(node.id, lambda: io.BytesIO(data))
        assert engine.persister is not None
        engine.persister.drain()
        assert not node.flags & PERSISTED and not (store.root / "f").exists()
        fs.setattr_of(node.id, mtime=MTIME)
        fs.setattr_of(node.id, uid=1000, gid=1001)
        fs.setattr_of(node.id, mode=0o644)
        engine.persister.drain()
        assert not (store.root / "f").exists()  # still open for writing
        assert not fs.closed(node.id, writing=True)
        engine.persister.drain()
        assert node.flags & PERSISTED
        st = os.stat(store.root / "f")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 1000, 1001)
        assert st.st_mtime_ns == MTIME
        assert store.get("f") == data
        fs.closed(node.id)
    finally:
        engine.close()


def test_setattr_now_commits_a_change_of_the_journal_only(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine, _store = _mounted(tmp_path, ssd_home, open_engine, "CACHE_THROUGH")
    try:
        fs = engine.fs
        parent = engine.sync.lookup("/m").id
        new = fs.create_as(ROOT, parent, "new", 0o600)  # not in the store yet
        seq = fs.setattr_now(new.id, uid=1000, mtime=MTIME)
        assert seq is not None and seq > 0
        fs.wait_acknowledged(seq)
        assert (new.uid, new.mtime) == (1000, MTIME)
        # A file the store holds: its copy changes first, in a thread (None: nothing done).
        stored = fs.write_file("/m/stored", io.BytesIO(content(4)), 0o644, 0, 0)
        assert fs.setattr_now(stored.id, mode=0o600) is None
        assert stat.S_IMODE(stored.mode) == 0o644
        assert fs.setattr_now(engine.sync.lookup("/m").id, mode=0o700) is None  # a directory
        # The lock taken elsewhere: never waited for.
        with held_elsewhere(engine.ns.lock):
            assert fs.setattr_now(new.id, mode=0o640) is None
        assert stat.S_IMODE(new.mode) == 0o600
    finally:
        engine.close()
    engine = open_engine()
    try:
        again = engine.sync.lookup("/m/new")
        assert (again.uid, again.mtime) == (1000, MTIME)
    finally:
        engine.close()

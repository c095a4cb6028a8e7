"""Owners, modes and times reach a local store from the engine, whichever way the content
goes there: with a file's upload when it is not in the store yet, in place when it is."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from engine.state import PERSISTED
from tests.engine.content import content
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore


def test_an_upload_carries_what_was_set_before_it(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    engine = open_engine(ssd_home())
    try:
        fs = engine.fs
        fs.makedirs("/m")
        engine.mounts.mount("/m", store.uri, store.options)
        data = content(1)
        node = fs.write_file("/m/f", io.BytesIO(data), 0o644, 0, 0, write_type="ASYNC_THROUGH")
        # Set while its upload is pending or under way: the upload must not land with the
        # attributes it started with.
        fs.setattr_of(node.id, mode=0o600, uid=1000, gid=1001, mtime=1_400_000_000_000_000_000)
        assert engine.persister is not None
        engine.persister.drain()
        assert node.flags & PERSISTED
        st = os.stat(store.root / "f")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1000, 1001)
        assert st.st_mtime_ns == 1_400_000_000_000_000_000
        assert store.get("f") == data
    finally:
        engine.close()


def test_utimens_of_a_stored_file_is_not_new_content(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    engine = open_engine(ssd_home())
    fs = engine.fs
    fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    data = content(2)
    node = fs.write_file("/m/f", io.BytesIO(data), 0o640, 0, 0, write_type="CACHE_THROUGH")
    assert stat.S_IMODE(os.stat(store.root / "f").st_mode) == 0o640
    version, blocks = node.version, dict(engine.state.blocks[node.id])
    fs.setattr_of(node.id, mtime=1_300_000_000_000_000_000)
    assert os.stat(store.root / "f").st_mtime_ns == 1_300_000_000_000_000_000
    # The store's copy moved its fingerprint (size-mtime-inode), not its content: a sync
    # must not take it for new content and drop the cached blocks.
    engine.sync.sync("/m", recursive=True)
    assert node.version == version and engine.state.blocks[node.id] == blocks
    assert node.mtime == 1_300_000_000_000_000_000
    engine.close()
    engine = open_engine()
    try:
        again = engine.sync.lookup("/m/f")
        engine.sync.sync("/m", recursive=True)
        assert (again.version, again.mtime) == (version, 1_300_000_000_000_000_000)
        assert stat.S_IMODE(again.mode) == 0o640
        assert engine.fs.read("/m/f", 0, len(data)) == data
    finally:
        engine.close()

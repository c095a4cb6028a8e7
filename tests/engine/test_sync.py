"""The namespace follows changes made directly in a mounted UFS (a local directory, and S3 on
moto's server over HTTP): new objects appear, deleted ones leave, a modified one gets a new
content version whose stale cached blocks are dropped; all of it journaled and replayed."""

from __future__ import annotations

import io
import os
from pathlib import Path

from engine.engine import Engine
from engine.snapshot import digest
from engine.state import PERSISTED
from tests.cli.shoal_cli import shoal
from tests.invariants import OpenEngine
from tests.ufs.stores import Store


def names(engine: Engine, path: str, interval: float | None = None) -> dict[str, int]:
    return {n.name: n.size for n in engine.sync.listdir(path, interval)}


def test_the_namespace_follows_the_ufs(store: Store, home: Path, open_engine: OpenEngine) -> None:
    store.put("train/a.bin", b"A" * 10)
    store.put("train/b.bin", b"B" * 20)
    store.put("val/c.bin", b"C" * 30)
    engine = open_engine()
    try:
        engine.ns.mkdir("/data")
        engine.mounts.mount("/data", store.uri, store.options)
        assert names(engine, "/data") == {"train": 0, "val": 0}
        assert names(engine, "/data/train") == {"a.bin": 10, "b.bin": 20}  # loaded lazily
        b = engine.sync.lookup("/data/train/b.bin")
        old_version, old_fingerprint = b.version, b.ext.fingerprint  # type: ignore[union-attr]
        # b.bin is read, so its block is cached (in the home's default tiers).
        assert engine.fs.read("/data/train/b.bin", 0, 100) == b"B" * 20
        assert engine.cache is not None
        engine.cache.drain()
        [(version, _idx)] = engine.state.blocks[b.id]
        assert version == old_version
        engine.ns.create("/data/train/only-in-shoal")  # not persisted: a sync must keep it

        store.delete("train/a.bin")
        store.put("train/b.bin", b"b" * 20)  # same size, new content
        store.put("train/d.bin", b"D" * 40)
        # The default interval is -1: a loaded listing is not listed again by itself...
        assert names(engine, "/data/train") == {"a.bin": 10, "b.bin": 20, "only-in-shoal": 0}
        # ...until a sync.
        assert engine.sync.sync("/data", recursive=True) >= 3
        assert names(engine, "/data/train") == {"b.bin": 20, "d.bin": 40, "only-in-shoal": 0}
        b = engine.sync.lookup("/data/train/b.bin")
        assert b.ext is not None and b.ext.fingerprint != old_fingerprint
        assert b.version == old_version + 1  # blocks keyed by the old version can never match
        assert b.id not in engine.state.blocks  # the stale cached blocks are gone
        assert engine.fs.read("/data/train/b.bin", 0, 100) == b"b" * 20  # the new bytes
        assert engine.cache is not None
        engine.cache.drain()  # that read's block is cached (journaled) in the background
        live = digest(engine.state)
    finally:
        engine.close(checkpoint=False)
    engine = open_engine()  # everything above came from the journal
    try:
        assert digest(engine.state) == live
    finally:
        engine.close()

    # A command can ask for a fresh listing; a file deleted in the UFS leaves on that sync.
    store.delete("val/c.bin")
    store.put("val/e.bin", b"E")
    out = shoal("fs", "ls", "--sync", "/data/val", home=home).stdout
    assert "e.bin" in out and "c.bin" not in out


def test_a_per_mount_interval_of_zero_lists_on_every_access(
    store: Store, open_engine: OpenEngine
) -> None:
    store.put("x", b"1")
    engine = open_engine()  # fsck-checked and closed after the test
    engine.ns.mkdir("/live")
    engine.mounts.mount("/live", store.uri, {**store.options, "sync_interval": "0"})
    assert names(engine, "/live") == {"x": 1}
    store.put("y", b"22")
    assert names(engine, "/live") == {"x": 1, "y": 2}
    assert engine.state.mounts[engine.ns.lookup("/live").id].options["sync_interval"] == "0"


def test_a_recursive_sync_of_many_directories_and_a_root_mount(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    root = tmp_path / "ufs"
    for d in range(30):
        for f in range(20):
            path = root / f"class{d:02d}" / f"img{f:02d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * f)
    shoal("fs", "mount", "/", str(root), home=home)  # the whole namespace is the store
    out = shoal("fs", "sync", "-R", "/", home=home).stdout
    # Looking up / loaded its 30 directories; the sync then added 600 files, 2 entries each.
    assert out.startswith("1200 change(s)")
    engine = open_engine()  # fsck-checked and closed after the test
    assert len(engine.ns.listdir("/")) == 30
    assert sum(len(engine.ns.listdir(f"/class{d:02d}")) for d in range(30)) == 600
    assert engine.ns.lookup("/class07/img13.jpg").size == 13


def test_a_large_directory_loads_in_batches(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    root = tmp_path / "ufs"
    (root / "big").mkdir(parents=True)
    for i in range(5000):
        (root / "big" / f"f{i:05d}").write_bytes(b"")
    engine = open_engine()  # fsck-checked and closed after the test
    engine.ns.mkdir("/m")
    engine.mounts.mount("/m", str(root))
    assert len(engine.sync.listdir("/m/big")) == 5000
    assert os.path.exists(home / "journal")


def test_a_sync_keeps_content_the_ufs_does_not_have_yet(
    store: Store, open_engine: OpenEngine
) -> None:
    """A file rewritten into the cache only (its upload not done) is ahead of the UFS: a sync
    that finds the UFS's older object must not take it for the file's content."""
    engine = open_engine()
    engine.ns.mkdir("/data")
    engine.mounts.mount("/data", store.uri, store.options)
    engine.fs.write_file("/data/f", io.BytesIO(b"v1" * 100), write_type="THROUGH")
    engine.fs.write_file("/data/f", io.BytesIO(b"v2" * 100), write_type="MUST_CACHE")
    store.put("f", b"v3" * 100)  # the store's copy changes behind Shoal's back
    engine.sync.sync("/data", recursive=True)
    node = engine.sync.lookup("/data/f")
    assert not node.flags & PERSISTED
    assert engine.fs.read("/data/f", 0, 1000) == b"v2" * 100

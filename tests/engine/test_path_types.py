"""Read and write types set on a path: they apply to the tree below it, before the mount's and
the global ones, survive restarts (replay and checkpoint), and `inherit` removes them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import InvalidArgument
from engine.inode import PERSISTED
from tests.cli.shoal_cli import shoal
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore


def _cached_blocks(engine: Engine, path: str) -> int:
    return len(engine.state.blocks.get(engine.sync.lookup(path).id, {}))


def test_types_set_on_a_directory(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    store.put("raw/x.bin", b"r" * 100_000)
    store.put("other/y.bin", b"o" * 100_000)
    home = ssd_home()
    engine = open_engine()
    try:
        fs = engine.fs
        engine.mounts.mount("/", store.uri)
        fs.makedirs("/ckpt/run1")
        fs.set_types("/ckpt", write_type="ASYNC_THROUGH")
        fs.set_types("/raw", read_type="NO_CACHE")
        with pytest.raises(InvalidArgument, match="unknown write type"):
            fs.set_types("/ckpt", write_type="SOMETIMES")

        node = fs.write_file("/ckpt/run1/epoch1.pt", io.BytesIO(b"w" * 70_000))
        assert node.id in engine.state.persists or node.flags & PERSISTED  # ASYNC_THROUGH
        assert _cached_blocks(engine, "/ckpt/run1/epoch1.pt") == 2  # written to the cache
        other = fs.write_file("/other/z.bin", io.BytesIO(b"z" * 70_000))  # the default
        assert other.flags & PERSISTED and _cached_blocks(engine, "/other/z.bin") == 0
        assert store.get("other/z.bin") == b"z" * 70_000

        assert fs.read("/raw/x.bin", 0, 1 << 20) == b"r" * 100_000
        assert fs.read("/other/y.bin", 0, 1 << 20) == b"o" * 100_000
        assert engine.cache is not None
        engine.cache.drain()
        assert _cached_blocks(engine, "/raw/x.bin") == 0  # NO_CACHE below /raw
        assert _cached_blocks(engine, "/other/y.bin") == 2
        assert engine.persister is not None
        engine.persister.drain()
        assert store.get("ckpt/run1/epoch1.pt") == b"w" * 70_000
    finally:
        engine.close(checkpoint=False)

    for round_ in ("replayed", "from a checkpoint"):
        engine = open_engine()
        try:
            deep = engine.sync.lookup("/ckpt/run1")
            assert engine.fs.path_type(deep, "write_type") == "ASYNC_THROUGH", round_
            assert engine.fs.path_type(engine.sync.lookup("/raw/x.bin"), "read_type") == "NO_CACHE"
            if round_ == "replayed":
                engine.checkpoint()
        finally:
            engine.close(checkpoint=False)

    shoal("fs", "settype", "--write", "inherit", "/ckpt", home=home)
    out = shoal("fs", "stat", "/raw/x.bin", home=home).stdout
    assert "NO_CACHE (from a parent directory)" in out
    assert "write type" not in shoal("fs", "stat", "/ckpt/run1", home=home).stdout
    bad = shoal("fs", "settype", "--read", "SOMETIMES", "/raw", home=home, expect=1)
    assert "unknown read type 'SOMETIMES'" in bad.stderr

"""Per-path defaults (`fs pathconf`): longest prefix wins key by key, the precedence against the
call, `fs settype`, the mount's options and the configuration, unset, restarts (replay and
checkpoint), the path string kept through a rename, the sync interval and the TTL."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import InvalidArgument, InvalidName, NotFound
from engine.inode import PERSISTED
from engine.pathexplain import explain
from engine.snapshot import digest
from journal import entries as E
from recovery.fsck import check_path_confs
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore


def _cached(engine: Engine, path: str) -> int:
    return len(engine.state.blocks.get(engine.sync.lookup(path).id, {}))


def _write(engine: Engine, path: str, kind: str | None = None) -> str:
    """Writes 70 kB at ``path``; the write type it had, as seen in the state."""
    node = engine.fs.write_file(path, io.BytesIO(b"w" * 70_000), write_type=kind)
    cached = _cached(engine, path) > 0
    if node.id in engine.state.persists:
        return "ASYNC_THROUGH"
    if node.flags & PERSISTED:
        return "CACHE_THROUGH" if cached else "THROUGH"
    return "MUST_CACHE"


def test_pathconf_longest_prefix_and_precedence(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    store.put("raw/x.bin", b"r" * 100_000)
    store.put("raw/keep/y.bin", b"k" * 100_000)
    ssd_home()
    engine = open_engine()
    try:
        fs = engine.fs
        engine.mounts.mount("/", store.uri, {"write_type": "CACHE_THROUGH"})
        fs.makedirs("/out/keep/deeper")
        fs.makedirs("/other")
        fs.pathconf.set("/out", {"write_type": "ASYNC_THROUGH", "read_type": "NO_CACHE"})
        fs.pathconf.set("/out/keep", {"write_type": "MUST_CACHE"})
        fs.pathconf.set("/raw", {"read_type": "NO_CACHE"})

        assert _write(engine, "/out/a.bin") == "ASYNC_THROUGH"  # path conf > mount option
        assert _write(engine, "/out/keep/deeper/b.bin") == "MUST_CACHE"  # the deepest prefix
        assert _write(engine, "/other/c.bin") == "CACHE_THROUGH"  # the mount's option
        assert _write(engine, "/out/d.bin", "THROUGH") == "THROUGH"  # the call's option wins
        fs.set_types("/out/keep", write_type="THROUGH")  # an inode's own type beats path conf
        assert _write(engine, "/out/keep/e.bin") == "THROUGH"
        fs.set_types("/out/keep", write_type="")
        # Key by key: /out/keep sets no read type, so /out's applies below it.
        deeper = engine.sync.lookup("/out/keep/deeper")
        assert fs.pathconf.effective(deeper) == {
            "write_type": ("MUST_CACHE", "/out/keep"),
            "read_type": ("NO_CACHE", "/out"),
        }

        assert fs.read("/raw/keep/y.bin", 0, 1 << 20) == b"k" * 100_000
        assert fs.read("/raw/x.bin", 0, 1 << 20) == b"r" * 100_000
        assert engine.cache is not None
        engine.cache.drain()
        assert _cached(engine, "/raw/x.bin") == 0 and _cached(engine, "/raw/keep/y.bin") == 0

        assert fs.pathconf.unset("/out/keep") == ["write_type"]
        assert _write(engine, "/out/keep/f.bin") == "ASYNC_THROUGH"  # /out's again
        with pytest.raises(NotFound, match="no path conf at /out/keep"):
            fs.pathconf.unset("/out/keep")
        fs.pathconf.unset("/raw", ["read_type"])
        assert fs.read("/raw/x.bin", 0, 1 << 20) == b"r" * 100_000
        engine.cache.drain()
        assert _cached(engine, "/raw/x.bin") == 2  # the global CACHE now
    finally:
        engine.close(checkpoint=False)


def test_pathconf_survives_replay_and_checkpoint(
    ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    ssd_home()
    engine = open_engine()
    try:
        engine.fs.pathconf.set("/", {"sync_interval": "0"})
        engine.fs.pathconf.set("/data/out", {"write_type": "ASYNC_THROUGH", "ttl": "3600000"})
        engine.fs.pathconf.set("/data/out", {"ttl_action": "delete"})
        engine.fs.pathconf.unset("/data/out", ["ttl"])
        engine.fs.pathconf.set("/caf\udce9", {"read_type": "NO_CACHE"})  # a name not UTF-8
        live = engine.fs.pathconf.listing()
        before = digest(engine.state)
    finally:
        engine.close(checkpoint=False)
    assert live == [
        ("/", {"sync_interval": "0"}),
        ("/caf\udce9", {"read_type": "NO_CACHE"}),
        ("/data/out", {"ttl_action": "delete", "write_type": "ASYNC_THROUGH"}),
    ]
    assert E.TYPE_CODES[E.PathConfSet] == 23  # reserved for it: part of the on-disk format
    for round_ in ("replayed", "from a checkpoint", "after the checkpoint"):
        engine = open_engine()
        try:
            assert engine.fs.pathconf.listing() == live, round_
            assert digest(engine.state) == before, round_
            assert check_path_confs(engine.state) == []
            if round_ == "replayed":
                engine.checkpoint()
        finally:
            engine.close(checkpoint=False)


def test_pathconf_is_kept_by_path_string_through_a_rename(
    ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    ssd_home()
    engine = open_engine()
    try:
        fs = engine.fs
        fs.makedirs("/a/sub")
        fs.pathconf.set("/a", {"read_type": "NO_CACHE"})
        sub = engine.sync.lookup("/a/sub")
        assert fs.pathconf.value(sub, "read_type") == "NO_CACHE"  # now cached by inode
        fs.rename("/a", "/b")
        assert fs.pathconf.value(sub, "read_type") is None  # /b/sub: no prefix names it
        fs.makedirs("/a/new")
        assert fs.pathconf.value(engine.sync.lookup("/a/new"), "read_type") == "NO_CACHE"
        fs.rename("/b", "/a/new/b")  # moved under the configured path: it applies again
        assert fs.pathconf.value(sub, "read_type") == "NO_CACHE"
    finally:
        engine.close(checkpoint=False)


def test_pathconf_refuses_bad_keys_values_and_paths(
    ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    ssd_home()
    engine = open_engine()
    try:
        pc = engine.fs.pathconf
        with pytest.raises(
            InvalidArgument, match="unknown path conf key 'write_typ'.*did you mean"
        ):
            pc.set("/x", {"write_typ": "THROUGH"})
        with pytest.raises(InvalidArgument, match="did you mean 'ASYNC_THROUGH'"):
            pc.set("/x", {"write_type": "ASYNC_THRU"})
        with pytest.raises(InvalidArgument, match="sync_interval = '-5' is not valid"):
            pc.set("/x", {"sync_interval": "-5"})
        with pytest.raises(InvalidArgument, match="contains '..'"):
            pc.set("/x/../y", {"ttl": "5"})
        with pytest.raises(InvalidName):
            pc.set("/x/" + "n" * 300, {"ttl": "5"})
        assert pc.set("/x/./y/", {"ttl": "5"}) == "/x/y"  # normalized
        assert engine.journal.last_seq == engine.state.last_seq
        assert pc.listing() == [("/x/y", {"ttl": "5"})]
    finally:
        engine.close(checkpoint=False)


def test_pathconf_sync_interval_below_a_prefix(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    store.put("fresh/a", b"a")
    store.put("stale/a", b"a")
    ssd_home()
    engine = open_engine()  # the global sync interval: -1, never listed again
    try:
        engine.mounts.mount("/", store.uri)
        engine.fs.pathconf.set("/fresh", {"sync_interval": "0"})
        for d in ("fresh", "stale"):
            assert [n.name for n in engine.sync.listdir(f"/{d}")] == ["a"]
            store.put(f"{d}/b", b"b")
        assert sorted(n.name for n in engine.sync.listdir("/fresh")) == ["a", "b"]
        assert [n.name for n in engine.sync.listdir("/stale")] == ["a"]
    finally:
        engine.close(checkpoint=False)


def test_pathconf_ttl_expires_files_below_the_prefix(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    ssd_home()
    engine = open_engine()
    try:
        fs = engine.fs
        engine.mounts.mount("/", store.uri)
        fs.makedirs("/scratch/keep")
        fs.makedirs("/data")
        fs.pathconf.set("/scratch", {"ttl": "60000", "ttl_action": "delete"})
        fs.pathconf.set("/scratch/keep", {"ttl": "-1"})  # a deeper prefix cancels it
        for path in ("/scratch/old.bin", "/scratch/keep/k.bin", "/data/d.bin"):
            _write(engine, path)
        assert engine.ttl.run_once() == 0  # not a minute old yet
        later = time.time_ns() + 61 * 10**9
        assert [p for p, _n, _a in engine.ttl.expired(later)] == ["/scratch/old.bin"]
        assert engine.ttl.run_once(later) == 1
        ufs = tmp_path / "ufs"
        assert (ufs / "scratch/keep/k.bin").exists() and (ufs / "data/d.bin").exists()
        assert not (ufs / "scratch/old.bin").exists()
        with pytest.raises(NotFound):
            engine.sync.lookup("/scratch/old.bin")
    finally:
        engine.close(checkpoint=False)


def test_pathconf_explain_follows_the_precedence(
    ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    ssd_home()
    engine = open_engine()
    try:
        fs = engine.fs
        fs.makedirs("/d/e")
        fs.pathconf.set("/d", {"ttl": "1000", "ttl_action": "delete", "read_type": "NO_CACHE"})
        engine.ns.setattr("/d/e", ttl_ms=5000)  # its own TTL, with no action: free
        got = {k: (v, src) for k, v, src in explain(fs.placement, "/d/e/f", engine.sync.interval_s)}
        assert got == {
            "read_type": ("NO_CACHE", "path conf /d"),
            "write_type": ("THROUGH", "config write_type"),
            "sync_interval": ("-1", "config ufs.sync_interval"),
            "ttl": ("5000", "fs setttl on /d/e"),
            "ttl_action": ("free", "fs setttl on /d/e"),
        }
        got = {k: (v, src) for k, v, src in explain(fs.placement, "/d/x", engine.sync.interval_s)}
        assert got["ttl"] == ("1000", "path conf /d") and got["ttl_action"][0] == "delete"
        # A TTL set with an action, then removed (`fs unsetttl`): the action left on the node
        # applies no more, the path conf's does.
        engine.ns.setattr("/d/e", ttl_ms=5000, ttl_action="free")
        engine.ns.setattr("/d/e", ttl_ms=-1)
        got = {k: (v, src) for k, v, src in explain(fs.placement, "/d/e/f", engine.sync.interval_s)}
        assert got["ttl"] == ("1000", "path conf /d")
        assert got["ttl_action"] == ("delete", "path conf /d")
    finally:
        engine.close(checkpoint=False)

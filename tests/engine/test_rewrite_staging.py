"""A rewrite through the cache stages its new version beside the old one and commits it with one
entry (engine/cache/staging.py): the old content stays readable and whole until then, a crash
in flight (a real kill -9 of a real writer process) leaves it exactly, a failed rewrite keeps
it, and the staged blocks a crash leaves are named by fsck and dropped at the next start."""

from __future__ import annotations

import copy
import io
import os
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from engine.engine import Engine
from engine.errors import Busy, NoSpace, Refused
from engine.inode import PERSISTED
from journal import entries as E
from tests.cli.shoal_cli import shoal
from tests.crashes import killed_once_said
from tests.engine.content import content
from tests.homes import SsdHome
from tests.invariants import OpenEngine, assert_fsck_clean
from tests.ufs.stores import Store

MIB = 1 << 20
OLD = content(1, MIB)[:MIB]  # what was acknowledged before the rewrite


def stream(data: bytes, at_byte: int = -1, at: Callable[[], object] = lambda: None) -> BinaryIO:
    """A source of unknown length (like a pipe: no pre-check of its size) giving ``data``, and
    calling ``at()`` once when ``at_byte`` bytes have been read."""
    return cast(BinaryIO, _Stream(data, at_byte, at))


class _Stream(io.RawIOBase):
    def __init__(self, data: bytes, at_byte: int, at: Callable[[], object]) -> None:
        self.data, self.pos, self.at_byte, self.at = data, 0, at_byte, at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self.pos == self.at_byte:
            self.at_byte = -1
            self.at()
        end = min(len(self.data), self.pos + len(buffer))
        if self.at_byte > self.pos:
            end = min(end, self.at_byte)
        n = end - self.pos
        buffer[:n] = self.data[self.pos : end]
        self.pos = end
        return n


def staged_files(home: Path, version: int) -> list[str]:
    """Block files of ``version`` in the test home's SSD tier (tests/engine/conftest.py)."""
    found = []
    for _root, _dirs, files in os.walk(home.parent / "ssd"):
        found += [f for f in files if f.startswith(f"{version}-") and f.endswith(".blk")]
    return found


# The writer process: rewrites (appends to) the file with a stream that stalls once
# `stall` bytes are given, having first waited until everything journaled so far is durable
# (the staged blocks' entries among them); then it says so and waits to be killed.
WRITER = textwrap.dedent(
    """
    import io, sys, time
    from engine.engine import Engine
    from tests.engine.content import content

    home, path, kind, stall = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    old = content(1, 1 << 20)[: 1 << 20]
    new = old + b"N" * (stall - len(old))  # the file with bytes appended
    engine = Engine.open_home(home)

    class Appended(io.RawIOBase):
        given = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            if self.given >= stall:
                engine.journal.wait(engine.journal.last_seq)
                print("STALLED", flush=True)
                while True:
                    time.sleep(60)
            n = min(len(buffer), stall - self.given)
            buffer[:n] = new[self.given : self.given + n]
            self.given += n
            return n

    engine.fs.write_file(path, Appended(), write_type=kind)
    print("FINISHED", flush=True)
    """
)


@pytest.mark.parametrize("kind", ["MUST_CACHE", "ASYNC_THROUGH"])
def test_kill9_during_a_rewrite_keeps_the_acknowledged_content(
    kind: str, store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home(quota="64MiB")
    engine = open_engine()
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    node = engine.fs.write_file("/m/f", io.BytesIO(OLD), write_type=kind)  # acknowledged
    old_version = node.version
    if kind == "ASYNC_THROUGH":
        assert engine.persister is not None
        engine.persister.drain()
        assert store.get("f") == OLD  # the UFS holds the old version too
    engine.close()
    # 8 MiB of new content in 64 KiB blocks: 128 blocks staged when the writer stalls.
    killed_once_said(WRITER, str(home), "/m/f", kind, str(8 * MIB), said="STALLED")
    assert len(staged_files(home, old_version + 1)) >= 128  # the rewrite was in flight

    # Before start-up's repair: the old content, whole...
    look = Engine.open_home(str(home), reconcile=False)
    try:
        node = look.sync.lookup("/m/f")
        assert (node.size, node.version) == (MIB, old_version)
        assert look.fs.read("/m/f", 0, 2 * MIB) == OLD
    finally:
        look.close(checkpoint=False)
    # ...and `shoal fsck` names the staged blocks of the version never reached.
    out = shoal("fsck", home=home, expect=1).stdout
    assert "FAIL  staged" in out, out
    assert f"inode {node.id}: 128 staged block(s) of version {old_version + 1}" in out, out

    engine = open_engine()  # start-up drops the staged blocks
    node = engine.sync.lookup("/m/f")
    assert (node.size, node.version) == (MIB, old_version)
    assert engine.fs.read("/m/f", 0, 2 * MIB) == OLD
    assert kind == "MUST_CACHE" or node.flags & PERSISTED
    assert_fsck_clean(engine)
    assert staged_files(home, old_version + 1) == []
    assert all(v == old_version for v, _i in engine.state.blocks[node.id])
    # And the file can be rewritten again, all the way this time.
    engine.fs.write_file("/m/f", io.BytesIO(b"new" * 1000), write_type=kind)
    engine.close()
    engine = open_engine()
    assert engine.fs.read("/m/f", 0, MIB) == b"new" * 1000


def mounted(engine: Engine, tmp_path: Path) -> Engine:
    """``engine`` with a local UFS mounted at its root (file data needs a mount)."""
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    engine.mounts.mount("/", str(ufs))
    return engine


def with_old(engine: Engine, tmp_path: Path) -> Engine:
    """``engine`` mounted (as above) with /f holding OLD, in the cache only."""
    mounted(engine, tmp_path).fs.write_file("/f", io.BytesIO(OLD), write_type="MUST_CACHE")
    return engine


def test_the_old_content_is_served_until_the_new_is_committed(
    ssd_home: SsdHome, open_engine: OpenEngine, tmp_path: Path
) -> None:
    engine = with_old(open_engine(ssd_home()), tmp_path)
    seen: list[bytes] = []
    new = b"n" * (3 * MIB)
    engine.fs.write_file(
        "/f", stream(new, 2 * MIB, lambda: seen.append(engine.fs.read("/f", 0, 2 * MIB))),
        write_type="MUST_CACHE",
    )  # fmt: skip
    assert seen == [OLD]
    assert engine.fs.read("/f", 0, 4 * MIB) == new
    engine.close()
    engine = open_engine()  # replayed: the commit entry switched the content
    assert engine.fs.read("/f", 0, 4 * MIB) == new


def test_a_rewrite_that_runs_out_of_room_keeps_a_cache_only_file(
    ssd_home: SsdHome, open_engine: OpenEngine, tmp_path: Path
) -> None:
    home = ssd_home(quota="256KiB")
    engine = mounted(open_engine(home), tmp_path)
    engine.fs.write_file("/only", io.BytesIO(b"o" * 150_000), write_type="MUST_CACHE")
    # Of unknown length (a pipe): not refused up front, it runs out of room halfway.
    with pytest.raises(NoSpace, match="no room"):
        engine.fs.write_file("/only", stream(b"n" * 300_000), write_type="MUST_CACHE")
    node = engine.sync.lookup("/only")
    assert node.size == 150_000
    assert engine.fs.read("/only", 0, 1 << 20) == b"o" * 150_000
    assert all(v == node.version for v, _i in engine.state.blocks[node.id])
    assert engine.cache is not None and not engine.cache.staging
    assert staged_files(home, node.version + 1) == []


def test_a_file_truncated_during_its_rewrite_keeps_the_truncation(
    ssd_home: SsdHome, open_engine: OpenEngine, tmp_path: Path
) -> None:
    home = ssd_home()
    engine = with_old(open_engine(home), tmp_path)
    version = engine.sync.lookup("/f").version
    with pytest.raises(Busy, match="changed while its new content was being written"):
        engine.fs.write_file(
            "/f", stream(b"n" * MIB, 512 * 1024, lambda: engine.ns.setattr("/f", size=0)),
            write_type="MUST_CACHE",
        )  # fmt: skip
    node = engine.sync.lookup("/f")
    assert node.size == 0 and node.version == version + 1
    assert node.id not in engine.state.blocks
    assert engine.cache is not None and not engine.cache.staging
    # The rewrite's block files (of the version the truncation took) went with it.
    assert staged_files(home, version + 1) == []


def test_rewrites_of_one_file_from_two_threads_take_turns(
    ssd_home: SsdHome, open_engine: OpenEngine, tmp_path: Path
) -> None:
    home = ssd_home()
    engine = with_old(open_engine(home), tmp_path)
    first_staging = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        # Started while the first rewrite stages: it waits for that one to commit rather than
        # stage the same version (or, should it come late, simply runs after it).
        first_staging.wait()
        try:
            engine.fs.write_file("/f", io.BytesIO(b"b" * 200_000), write_type="MUST_CACHE")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    engine.fs.write_file(
        "/f", stream(b"a" * 300_000, 100_000, first_staging.set), write_type="MUST_CACHE"
    )
    thread.join()
    assert not errors
    assert engine.fs.read("/f", 0, MIB) == b"b" * 200_000  # the later commit won
    node = engine.sync.lookup("/f")
    assert sum(i.length for i in engine.state.blocks[node.id].values()) == 200_000


def test_a_commit_missing_a_staged_block_is_refused_with_nothing_appended(
    ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    engine = open_engine(ssd_home())
    node = engine.ns.create("/f")
    with engine.gate.lock:
        v = node.version + 1
        engine.gate.commit(E.BlockCached(node.id, v, 0, "SSD", 4, 0, time.time_ns()))
        engine.gate.commit(E.BlockCached(node.id, v, 2, "SSD", 2, 0, time.time_ns()))
        last = engine.journal.last_seq
        with pytest.raises(Refused, match=f"block 1 of staged version {v} is not cached"):
            engine.gate.commit(E.ContentCommitted(node.id, v, 10, 4, False, time.time_ns()))
        with pytest.raises(Refused, match=f"staged version {v + 1}, file {node.id} is at"):
            engine.gate.commit(E.ContentCommitted(node.id, v + 1, 4, 4, False, time.time_ns()))
        assert engine.journal.last_seq == last
        assert node.version == v - 1
        for idx in (0, 2):
            engine.gate.commit(E.BlockRemoved(node.id, v, idx, time.time_ns()))


@pytest.mark.parametrize("kind", ["MUST_CACHE", "ASYNC_THROUGH"])
def test_every_prefix_of_a_rewrites_entries_replays_to_old_or_new_content(
    kind: str, ssd_home: SsdHome, open_engine: OpenEngine, tmp_path: Path
) -> None:
    """Replay of the log cut after any of a rewrite's entries (where a crash can leave it)
    gives the old content's size, version and blocks, or the new content whole."""
    engine = mounted(open_engine(ssd_home()), tmp_path)
    node = engine.fs.write_file("/f", io.BytesIO(OLD), write_type=kind)
    assert engine.persister is not None
    engine.persister.drain()
    with engine.gate.lock:
        before = copy.deepcopy(engine.state)
    old = (node.size, node.version, dict(before.blocks[node.id]))
    logged: list[object] = []
    engine.gate.observers.append(logged.append)
    new = b"n" * (MIB + 70_000)  # 18 blocks of 64 KiB, the last one short
    engine.fs.write_file("/f", io.BytesIO(new), write_type=kind)
    engine.gate.observers.remove(logged.append)
    assert len(logged) > 18
    for cut in range(len(logged) + 1):
        state = copy.deepcopy(before)
        for seq, entry in enumerate(logged[:cut], start=before.last_seq + 1):
            state.apply(entry, seq)
        f = state.tree.find(node.id)
        assert f is not None
        current = {k: v for k, v in state.blocks.get(node.id, {}).items() if k[0] == f.version}
        if (f.size, f.version, current) != old:
            assert (f.size, f.version) == (len(new), old[1] + 1), f"cut after {cut} entries"
            assert sorted(i for _v, i in current) == list(range(18))
            assert sum(b.length for b in current.values()) == len(new)
            assert cut == len(logged) or kind == "ASYNC_THROUGH"  # then: Persisted, later
    assert f is not None and (f.size, f.version) == (len(new), old[1] + 1)  # all: the new

"""A start after an unclean stop lists every directory loaded before it once more.

A change that reaches the store before its journal entry (a THROUGH write, mkdir, rm, mv:
engine/ufsfirst.py) is lost from the journal when the process is killed between the two; only
a listing finds it. With the default sync interval (-1) a loaded directory is otherwise never
listed again, so after a kill -9 (a real one, of a real process that had the home open) each
directory loaded before is listed at its first access, once; after a clean stop nothing is
listed again; while the store is down the journaled listing is still served.
"""

from __future__ import annotations

import io
import json
import os
import signal
import textwrap
from pathlib import Path

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from engine.engine import Engine
from engine.home import OPEN_MARKER, RELIST_FILE
from engine.inode import PERSISTED
from tests.cli.shoal_cli import shoal
from tests.crashes import killed_once_said
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import S3Store, Store

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = b"old " * 30_000, b"new content " * 9_000  # a THROUGH file's two versions
CACHED = b"only in shoal " * 5_000  # a MUST_CACHE file: its content is only in the cache

# A process that opens the home for use, makes the store steps of UFS-first changes below /m
# with the engine's own connector (what engine/writepath.py and engine/ufsfirst.py do before
# they journal), says so, and waits to be killed: each change is cut between its store step
# and its journal entry. ``steps``: op, path[, second path | content's repeated text].
CUTTER = textwrap.dedent(
    """
    import io, json, sys, time
    from engine.engine import Engine

    home, steps = sys.argv[1], json.loads(sys.argv[2])
    engine = Engine.open_home(home)
    mount = engine.fs.mount_of("/m/x")
    ufs = engine.mounts.connector(mount)
    for op, path, *more in steps:
        if op == "write":
            ufs.write(path, io.BytesIO(more[0].encode() * more[1]))
        elif op == "delete":
            ufs.delete(path)
        elif op == "rename":
            ufs.rename(path, more[0])
        elif op == "mkdir":
            ufs.mkdir(path)
    print("CUT", flush=True)
    while True:
        time.sleep(60)
    """
)


def cut_and_kill(home: Path, steps: list[list[object]]) -> None:
    """Runs CUTTER with ``steps`` and kills it with SIGKILL once they are in the store."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = killed_once_said(CUTTER, str(home), json.dumps(steps), said="CUT", env=env)
    assert proc.returncode == -signal.SIGKILL


def names(engine: Engine, path: str) -> set[str]:
    return {node.name for node in engine.sync.listdir(path)}


def loaded(open_engine: OpenEngine, store: Store) -> None:
    """/m mounted on ``store`` with THROUGH files, a MUST_CACHE one and a subdirectory, all
    listed (so marked as loaded), by an engine closed again."""
    engine = open_engine()
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    for name in ("f", "gone", "a"):
        engine.fs.write_file(f"/m/{name}", io.BytesIO(OLD), write_type="THROUGH")
    engine.fs.write_file("/m/cached", io.BytesIO(CACHED), write_type="MUST_CACHE")
    engine.fs.mkdir("/m/sub")
    engine.fs.write_file("/m/sub/s", io.BytesIO(OLD), write_type="THROUGH")
    assert names(engine, "/m") == {"f", "gone", "a", "cached", "sub"}
    assert names(engine, "/m/sub") == {"s"}
    engine.close()


def test_after_a_kill_each_loaded_directory_is_listed_once_and_a_clean_stop_lists_none(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    loaded(open_engine, store)

    # A clean stop: loaded directories are not listed again (the interval is -1).
    store.put("outside", b"put there by someone else")
    engine = open_engine()
    assert names(engine, "/m") == {"f", "gone", "a", "cached", "sub"}
    engine.close()
    assert not (home / OPEN_MARKER).exists()

    cut_and_kill(home, [
        ["write", "f", "new content ", 9_000],  # a THROUGH rewrite of a persisted file
        ["write", "born", "born ", 100],  # a THROUGH create
        ["delete", "gone"],
        ["rename", "a", "b"],
        ["mkdir", "d"],
        ["write", "cached", "stale copy ", 10],  # a store object under a cache-only file
        ["write", "sub/s", "new content ", 9_000],
    ])  # fmt: skip

    engine = open_engine()
    assert names(engine, "/m") == {"f", "born", "b", "d", "cached", "sub", "outside"}
    f = engine.sync.lookup("/m/f")
    assert f.flags & PERSISTED and f.size == len(NEW)
    assert engine.fs.read("/m/f", 0, 1 << 20) == NEW  # the store's newer content is taken
    assert engine.fs.read("/m/b", 0, 1 << 20) == OLD
    assert engine.fs.read("/m/born", 0, 1 << 20) == b"born " * 100
    # A file whose content is only in Shoal is never overwritten by a listing.
    assert engine.fs.read("/m/cached", 0, 1 << 20) == CACHED
    # /m is listed once: a change made afterwards is not seen (the interval is -1 again).
    store.put("later", b"later")
    assert "later" not in names(engine, "/m")
    engine.close()  # /m/sub was not looked into: it is still due after this clean stop

    engine = open_engine()
    assert "later" not in names(engine, "/m")
    assert engine.fs.read("/m/sub/s", 0, 1 << 20) == NEW
    store.put("sub/later", b"later")
    assert names(engine, "/m/sub") == {"s"}
    engine.close()
    engine = open_engine()
    assert names(engine, "/m/sub") == {"s"}  # listed once, not at every start
    engine.close()
    out = shoal("fsck", home=home)
    assert "ok    stop-record" in out.stdout, out.stdout


def test_after_a_kill_a_loaded_directory_is_served_while_the_store_is_down(
    proxy: FaultProxy, s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)  # the mount reaches it through the proxy, the test directly
    store.options.update(endpoint=proxy.endpoint, max_attempts="2", connect_timeout_s="1")
    home = ssd_home()
    loaded(open_engine, store)
    cut_and_kill(home, [["write", "born", "born ", 100]])

    proxy.add(Fault("drop", -1))  # every request dropped from now on
    engine = open_engine()
    engine.sync.retry_after_s = 3600  # a failed look is not repeated during the test
    assert names(engine, "/m") == {"f", "gone", "a", "cached", "sub"}  # stale, not EIO
    assert engine.fs.read("/m/cached", 0, 1 << 20) == CACHED
    proxy.clear()  # the store is back, and the back-off over: the due listing happens
    engine.sync.retry_after_s = 0
    assert names(engine, "/m") == {"f", "gone", "a", "cached", "sub", "born"}
    assert engine.fs.read("/m/born", 0, 1 << 20) == b"born " * 100


def test_fsck_names_a_stop_record_that_cannot_be_read_and_a_start_writes_it_anew(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    loaded(open_engine, store)
    (home / RELIST_FILE).write_bytes(b"garbage")
    out = shoal("fsck", home=home, expect=1).stdout
    assert "FAIL  stop-record" in out, out
    assert f"{RELIST_FILE} holds 'garbage', not a time in ns" in out, out

    store.put("outside", b"x")
    engine = open_engine()  # every loaded directory is listed once more
    assert "outside" in names(engine, "/m")
    engine.close()
    assert "ok    stop-record" in shoal("fsck", home=home).stdout

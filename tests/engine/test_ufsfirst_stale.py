"""Renames and deletes below a mount leave no stale copy in the store (engine/ufsfirst.py): a
rename over a file removes the replaced file's copy when the moved file brings none of its own;
a file whose current content is only in the cache has its older store copy removed, not moved,
so no kill between the store step and the journal entry can put superseded content under a
new name; and neither an unlink nor a rename of such a file brings anything back after a
restart's listing. Real engines on real homes, a local directory and moto's S3 over HTTP, and
a real kill -9 of a process stopped right after its store step."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import NotFound
from engine.inode import PERSISTED
from tests.crashes import killed_once_said
from tests.homes import SsdHome
from tests.invariants import CheckedEngine, OpenEngine
from tests.ufs.stores import LocalStore, Store

V1 = b"old-a-v1, in the store"
V2 = b"NEW-a-v2, only in the cache"
OLD_B = b"old-b, in the store"


def mounted(open_engine: OpenEngine, home: Path, store: Store) -> Engine:
    engine = open_engine(home)
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    return engine


def files(store: Store) -> set[str]:
    return {k for k in store.keys() if not k.endswith("/")}


def relisted(open_engine: OpenEngine, home: Path, path: str = "/m") -> CheckedEngine:
    """The home opened again and ``path`` listed from its store anew (as a restart's listing)."""
    engine = open_engine(home)
    engine.sync.sync(path, recursive=True)
    return engine


def restarted(engine: Engine, open_engine: OpenEngine, home: Path) -> CheckedEngine:
    """``engine`` closed, and the home relisted (as above)."""
    engine.close()
    return relisted(open_engine, home)


def listed(engine: Engine) -> list[str]:
    """The names in /m, sorted."""
    return sorted(n.name for n in engine.ns.listdir("/m"))


def superseded(engine: Engine, path: str) -> None:
    """``path``: V1 written THROUGH (in the store), then V2 over it in the cache only."""
    engine.fs.write_file(path, io.BytesIO(V1), write_type="THROUGH")
    engine.fs.write_file(path, io.BytesIO(V2), write_type="MUST_CACHE")
    node = engine.sync.lookup(path)
    assert not node.flags & PERSISTED and node.ext is not None and node.ext.fingerprint


def b_after(op: str, stored: set[str], home: Path, store: Store, open_engine: OpenEngine) -> Engine:
    """/m/a superseded (as above) beside /m/b, whose OLD_B is in the store, then /m/a deleted
    or renamed over /m/b (``op``): the store holds the ``stored`` files, and after a restart
    /m lists b alone."""
    engine = mounted(open_engine, home, store)
    superseded(engine, "/m/a")
    engine.fs.write_file("/m/b", io.BytesIO(OLD_B), write_type="THROUGH")
    if op == "delete":
        engine.fs.delete("/m/a")
    else:
        engine.fs.rename("/m/a", "/m/b")
    assert files(store) == stored
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == ["b"]
    return engine


def test_a_rename_over_a_file_removes_the_replaced_copy(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    engine = mounted(open_engine, home, store)
    engine.fs.write_file("/m/a", io.BytesIO(b"replaced-a"), write_type="THROUGH")
    engine.fs.write_file("/m/x", io.BytesIO(b"replaced-x"), write_type="THROUGH")
    engine.fs.write_file("/m/c", io.BytesIO(b"cache-only"), write_type="MUST_CACHE")
    engine.ns.create("/m/n")  # created (journaled), no content ever committed
    engine.fs.rename("/m/c", "/m/a")
    engine.fs.rename("/m/n", "/m/x")

    # The next start's listing shows each name with what was renamed onto it...
    engine = restarted(engine, open_engine, home)
    assert engine.fs.read("/m/x", 0, 100) == b""
    assert engine.sync.lookup("/m/x").size == 0
    assert engine.fs.read("/m/a", 0, 100) == b"cache-only"
    # ...and neither replaced file's copy is left in the store to come back later.
    assert files(store) == set()
    engine.fs.delete("/m/a")
    engine.fs.delete("/m/x")
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []  # nothing replaced comes back
    engine.close()


def test_a_persisted_file_is_moved_over_the_replaced_one(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    engine = mounted(open_engine, home, store)
    engine.fs.write_file("/m/p", io.BytesIO(b"persisted"), write_type="THROUGH")
    engine.fs.write_file("/m/q", io.BytesIO(b"replaced"), write_type="THROUGH")
    engine.fs.rename("/m/p", "/m/q")
    assert files(store) == {"q"} and store.get("q") == b"persisted"
    engine = restarted(engine, open_engine, home)
    assert engine.fs.read("/m/q", 0, 100) == b"persisted"
    assert listed(engine) == ["q"]
    engine.close()


def test_a_stale_copy_is_removed_not_moved(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    engine = mounted(open_engine, home, store)
    superseded(engine, "/m/a")
    engine.fs.makedirs("/m/d")
    superseded(engine, "/m/d/x")
    engine.fs.rename("/m/a", "/m/b")
    engine.fs.rename("/m/d", "/m/e")
    # V1 was acknowledged away: it must not be under any name, old or new.
    assert files(store) == set()

    engine = restarted(engine, open_engine, home)
    assert listed(engine) == ["b", "e"]
    assert engine.fs.read("/m/b", 0, 100) == V2
    assert engine.fs.read("/m/e/x", 0, 100) == V2
    engine.close()


def test_unlink_of_a_file_with_an_older_store_copy_brings_nothing_back(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """/tmp/i14-torture-scratch/repro_unlink.sh as a test."""
    engine = b_after("delete", {"b"}, ssd_home(), store, open_engine)
    assert engine.fs.read("/m/b", 0, 100) == OLD_B
    engine.close()


def test_rename_of_a_file_with_an_older_store_copy_over_another(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """/tmp/i14-torture-scratch/repro_rename.sh as a test."""
    home = ssd_home()
    # Neither V1 nor the replaced b stays in the store.
    engine = b_after("rename", set(), home, store, open_engine)
    assert engine.fs.read("/m/b", 0, 100) == V2
    engine.fs.delete("/m/b")
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []
    engine.close()


# A process that does one rename or delete and stops right after its first store step, the
# instant a kill -9 finds it in: the store changed, the journal entry not yet written.
STOPPED = textwrap.dedent(
    """
    import sys, time
    from engine.engine import Engine
    from ufs.errors import UfsError
    from ufs.local import LocalUnderFS

    home, op, src, dst = sys.argv[1:5]

    def stop_after(step):
        def stepped(self, *args):
            step(self, *args)
            print("STORE-STEP-DONE", flush=True)
            while True:
                time.sleep(60)
        return stepped

    def refused(self, path, source, attrs=None):
        raise UfsError(f"{path}: uploads are refused in this test")

    if "--no-uploads" in sys.argv:  # a pending upload stays pending
        LocalUnderFS.write = refused
    LocalUnderFS.delete = stop_after(LocalUnderFS.delete)
    LocalUnderFS.rename = stop_after(LocalUnderFS.rename)
    engine = Engine.open_home(home)
    if op == "rename":
        engine.fs.rename(src, dst)
    else:
        engine.fs.delete(src)
    print("FINISHED", flush=True)
    """
)


def kill_after_store_step(home: Path, op: str, src: str, dst: str = "", *more: str) -> None:
    killed_once_said(STOPPED, str(home), op, src, dst, *more, said="STORE-STEP-DONE")


@pytest.mark.parametrize("op", ["rename", "rename-dir", "delete"])
def test_kill9_after_the_store_step_shows_no_superseded_content(
    op: str, tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = mounted(open_engine, home, store)
    if op == "rename-dir":
        engine.fs.makedirs("/m/d")
        superseded(engine, "/m/d/a")
        src, dst, path = "/m/d", "/m/e", "/m/d/a"
    else:
        superseded(engine, "/m/a")
        src, dst, path = "/m/a", "/m/b", "/m/a"
    engine.close()
    kill_after_store_step(home, "delete" if op == "delete" else "rename", src, dst)

    # The entry never became durable: the file is where it was, with its acknowledged content,
    # and no listing finds the superseded V1 under the new name (or the old one).
    engine = relisted(open_engine, home)
    assert engine.fs.read(path, 0, 100) == V2
    if op != "delete":  # (a directory rename makes its new directory first: it may be there)
        with pytest.raises(NotFound):
            engine.sync.lookup(dst + path[len(src) :])
    assert V1 not in {store.get(k) for k in files(store)}
    # The rename or delete done now leaves nothing of the file in the store.
    if op == "delete":
        engine.fs.delete(src)
    else:
        engine.fs.rename(src, dst)
        engine.fs.delete(dst, recursive=True)
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []
    assert files(store) == set()
    engine.close()


def test_kill9_before_the_replaced_copy_goes_keeps_the_rename(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """A file with its upload pending renamed over a persisted one: the replaced copy is
    removed only once the rename is journaled (the upload writes over it in any case), so a
    kill at that removal leaves the rename whole, never the replaced file's name gone alone."""
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = mounted(open_engine, home, store)
    engine.fs.write_file("/m/b", io.BytesIO(OLD_B), write_type="THROUGH")
    assert engine.persister is not None
    engine.persister.close()  # its upload stays pending in the journal
    node = engine.fs.write_file("/m/a", io.BytesIO(V2), write_type="ASYNC_THROUGH")
    assert engine.state.persists == {node.id: node.version}
    engine.close()
    kill_after_store_step(home, "rename", "/m/a", "/m/b", "--no-uploads")

    engine = relisted(open_engine, home)
    assert listed(engine) == ["b"]
    assert engine.fs.read("/m/b", 0, 100) == V2
    assert engine.persister is not None
    engine.persister.drain()
    assert files(store) == {"b"} and store.get("b") == V2
    engine.close()


# A process that writes /m/a ASYNC_THROUGH and is killed the instant its upload has landed in
# the store, before the upload's Persisted is journaled.
LANDS = textwrap.dedent(
    """
    import io, sys, time
    from engine.engine import Engine
    from ufs.local import LocalUnderFS

    write = LocalUnderFS.write

    def landing(self, path, source, attrs=None):
        status = write(self, path, source, attrs)
        print("LANDED", flush=True)
        while True:
            time.sleep(60)

    LocalUnderFS.write = landing
    engine = Engine.open_home(sys.argv[1])
    engine.fs.write_file("/m/a", io.BytesIO(sys.argv[2].encode()), write_type="ASYNC_THROUGH")
    time.sleep(60)
    """
)

# A process that rewrites /m/a MUST_CACHE while every upload fails (the resumed one with it),
# and is killed once that is acknowledged.
REWRITES = textwrap.dedent(
    """
    import io, sys, time
    from engine.engine import Engine
    from ufs.errors import UfsUnavailable
    from ufs.local import LocalUnderFS

    def refused(self, path, source, attrs=None):
        raise UfsUnavailable(f"{path}: uploads are refused in this test")

    LocalUnderFS.write = refused
    engine = Engine.open_home(sys.argv[1])
    engine.fs.write_file("/m/a", io.BytesIO(sys.argv[2].encode()), write_type="MUST_CACHE")
    assert engine.state.persists, "the old request is still pending"
    print("REWRITTEN", flush=True)
    time.sleep(60)
    """
)


def test_a_superseded_upload_that_landed_unrecorded_never_comes_back(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """/m/a's ASYNC_THROUGH upload landed and a kill -9 cut its Persisted. After the restart
    the file is rewritten MUST_CACHE before the upload runs again (then another kill -9): the
    request is dropped as superseded, yet the store holds that copy. Deleting the file must
    remove it there, or the next listing brings the deleted file back."""
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    mounted(open_engine, home, store).close()
    killed_once_said(LANDS, str(home), V1.decode(), said="LANDED")
    assert store.get("a") == V1
    killed_once_said(REWRITES, str(home), V2.decode(), said="REWRITTEN")

    engine = open_engine(home)
    assert engine.persister is not None
    engine.persister.drain()  # the resumed request, superseded, is dropped
    assert not engine.state.persists
    assert engine.fs.read("/m/a", 0, 100) == V2
    engine.fs.delete("/m/a")
    assert files(store) == set()
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []  # V1 did not come back
    engine.close()


# A process that writes /m/a THROUGH over its cache-only content and is killed the instant
# the object has landed in the store, before the write is journaled.
THROUGH_LANDS = LANDS.replace('write_type="ASYNC_THROUGH"', 'write_type="THROUGH"')


def test_a_write_through_that_landed_unrecorded_never_comes_back(
    tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """/m/a holds V2 in the cache only (MUST_CACHE); a THROUGH rewrite lands V1 in the store
    and a kill -9 comes before its entry. After the restart /m/a still reads V2 (the rewrite
    was not acknowledged); once it is deleted, the landed object must not come back."""
    home = ssd_home()
    store = LocalStore(tmp_path / "ufs")
    engine = mounted(open_engine, home, store)
    engine.fs.write_file("/m/a", io.BytesIO(V2), write_type="MUST_CACHE")
    engine.close()
    killed_once_said(THROUGH_LANDS, str(home), V1.decode(), said="LANDED")
    assert store.get("a") == V1

    engine = relisted(open_engine, home)
    assert engine.fs.read("/m/a", 0, 100) == V2
    engine.fs.delete("/m/a")
    assert files(store) == set()
    engine = restarted(engine, open_engine, home)
    assert listed(engine) == []  # V1 did not come back
    engine.close()

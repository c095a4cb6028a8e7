"""Extended attributes and access times in the engine, without a mount: journaled, in
checkpoints, replayed; refused as the kernel's callers expect; judged by fsck."""

from __future__ import annotations

import io

import pytest

from engine import errors as err
from engine.snapshot import digest
from recovery.fsck import check_xattrs
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import Store


def test_attributes_and_atimes_survive_checkpoint_and_replay(open_engine: OpenEngine) -> None:
    engine = open_engine()
    f = engine.ns.create("/f")
    d = engine.ns.mkdir("/d")
    fs = engine.fs
    fs.set_xattr(f.id, "user.a", b"1")
    fs.set_xattr(d.id, "user.b", bytes(range(256)))
    engine.ns.setattr("/f", atime=123)
    engine.gate.checkpoint()
    fs.set_xattr(f.id, "user.c", b"after the checkpoint")
    fs.set_xattr(f.id, "user.a", None)
    engine.ns.setattr("/d", atime=456)
    before = digest(engine.state)
    engine.close()
    again = open_engine()
    assert digest(again.state) == before
    assert again.fs.list_xattrs(f.id) == ["user.c"]
    assert again.fs.get_xattr(d.id, "user.b") == bytes(range(256))
    assert (again.ns.lookup("/f").ext.atime, again.ns.lookup("/d").ext.atime) == (123, 456)  # type: ignore[union-attr]


def test_refusals(open_engine: OpenEngine) -> None:
    engine = open_engine()
    f = engine.ns.create("/f")
    link = engine.ns.symlink("/l", "f")
    fs = engine.fs
    last = engine.journal.last_seq
    for name, value, error in (
        ("trusted.t", b"v", err.NotSupported),
        ("security.s", None, err.NotSupported),
        ("user.none", None, err.NoAttribute),
        ("user.", b"v", err.InvalidArgument),
        ("user." + "n" * 251, b"v", err.InvalidArgument),
        ("user.big", bytes(65537), err.InvalidArgument),
    ):
        with pytest.raises(error):
            fs.set_xattr(f.id, name, value)
    with pytest.raises(err.NotPermitted):
        fs.set_xattr(link.id, "user.a", b"v")
    with pytest.raises(err.NoAttribute):
        fs.get_xattr(f.id, "security.capability")
    assert engine.journal.last_seq == last, "a refused change was journaled"
    fs.set_xattr(f.id, "user." + "n" * 250, bytes(65536))  # Linux's limits, exactly


def test_a_read_moves_atime_once_and_leaves_ctime(open_engine: OpenEngine) -> None:
    engine = open_engine()
    f = engine.ns.create("/f")
    ctime = f.ctime
    last = engine.journal.last_seq
    assert engine.fs.accessed(f.id)  # never read since written: due
    assert engine.journal.last_seq == last + 1
    assert f.ext is not None and f.ext.atime is not None and f.ext.atime >= f.mtime
    assert f.ctime == ctime
    assert not engine.fs.accessed(f.id)  # read after the last change, within a day
    assert engine.journal.last_seq == last + 1


def test_fsck_names_attributes_no_operation_could_make(open_engine: OpenEngine) -> None:
    engine = open_engine()
    f = engine.ns.create("/f")
    assert check_xattrs(engine.state) == []
    ext = f.ensure_ext()
    ext.xattrs = {"trusted.t": b"v"}  # by hand: the gate refuses such an entry
    ext.atime = -5
    assert check_xattrs(engine.state) == [
        f"inode {f.id}: 'trusted.t' is not a user.* attribute name",
        f"inode {f.id}: access time -5 is not a time",
    ]
    ext.xattrs = None  # mended, so that the engine closes with a clean fsck
    ext.atime = None
    f.ext = None


def test_a_file_uploaded_later_gets_its_attributes_in_the_store(
    store: Store, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    """Set while its upload waits (ASYNC_THROUGH): the persister hands them over with the
    content."""
    engine = open_engine(ssd_home())
    fs = engine.fs
    root = fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    assert engine.persister is not None
    with engine.persister.hold([root.id]):  # no upload starts meanwhile
        node = fs.write_file("/m/f", io.BytesIO(b"data"), write_type="ASYNC_THROUGH")
        fs.set_xattr(node.id, "user.a", b"set before the upload")
        assert "f" not in store.keys()
    engine.persister.drain()
    assert store.get("f") == b"data"
    assert store.xattrs("f") == {"user.a": b"set before the upload"}

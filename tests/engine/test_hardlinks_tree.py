"""The tree's rules for hard links, special files and directory link counts, on a real home:
what each change does to the names of an inode, what replay and checkpoints rebuild, and
the fsck checks that judge them."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import pytest

from engine import errors as err
from engine.engine import Engine
from engine.inode import COMPLETE
from engine.posix import Caller
from engine.snapshot import digest
from engine.state import State
from journal import entries as E
from recovery.fsck import check_directory_links, check_link_counts, check_no_cycles
from tests.invariants import OpenEngine, assert_fsck_clean
from tests.ufs.stores import LocalStore

ROOT = Caller(0, 0)


def link(engine: Engine, src: str, dst: str) -> None:
    engine.fs.links.link(engine.ns.lookup(src), dst)


def names(engine: Engine, path: str) -> list[tuple[str, int]]:
    """(path, inode) of every name of the inode at ``path``."""
    tree = engine.ns.tree
    node = engine.ns.lookup(path)
    return sorted(
        (tree.path_of(tree.get(pid)).rstrip("/") + "/" + name, node.id)
        for pid, name in tree.names_of(node)
    )


def test_a_file_has_several_names_and_loses_them_one_at_a_time(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/d")
    f = ns.create("/f")
    link(engine, "/f", "/d/g")
    link(engine, "/d/g", "/d/h")
    assert ns.lookup("/d/g") is f and ns.lookup("/d/h") is f
    assert ns.tree.nlink(f) == 3
    assert names(engine, "/f") == [("/d/g", f.id), ("/d/h", f.id), ("/f", f.id)]
    assert engine.ns.entries("/d") == [("g", f), ("h", f)]  # listed under these names
    ns.delete("/f")  # its own name: the oldest other one takes over
    assert ns.tree.find(f.id) is f and (f.parent, f.name) == (ns.lookup("/d").id, "g")
    assert ns.tree.nlink(f) == 2
    ns.delete("/d/h")
    assert ns.tree.nlink(f) == 1 and f.ext is None  # nothing left of the links
    ns.delete("/d/g")
    assert ns.tree.find(f.id) is None


def test_link_refusals_in_their_order(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/d")
    ns.create("/f")
    with pytest.raises(err.AlreadyExists):
        link(engine, "/d", "/f")  # EEXIST before EPERM
    with pytest.raises(err.NotPermitted):
        link(engine, "/d", "/e")
    with pytest.raises(err.NotFound):
        link(engine, "/f", "/nowhere/g")
    with pytest.raises(err.NameTooLong):
        link(engine, "/f", "/d/" + "x" * 256)
    with pytest.raises(err.NotPermitted):
        ns.link_in(ns.lookup("/d").id, 1, "e")
    assert ns.tree.nlink(ns.lookup("/f")) == 1


def test_rename_moves_one_name_and_onto_another_name_is_a_no_op(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/d")
    f = ns.create("/f")
    link(engine, "/f", "/g")
    seq = engine.journal.last_seq
    ns.rename("/g", "/f")  # POSIX: both names of one file, nothing happens
    assert engine.journal.last_seq == seq and ns.lookup("/g") is f
    with engine.gate.lock, pytest.raises(err.Refused, match="another name"):
        engine.gate.commit(E.Rename(f.id, 1, "g", 1, "f", time.time_ns(), None))
    ns.rename("/g", "/d/moved")
    assert names(engine, "/f") == [("/d/moved", f.id), ("/f", f.id)]
    other = ns.create("/other")
    ns.rename("/other", "/f")  # over a linked name: that name goes, the file stays
    assert ns.lookup("/f") is other and ns.lookup("/d/moved") is f
    assert ns.tree.nlink(f) == 1 and (f.parent, f.name) == (ns.lookup("/d").id, "moved")


def test_a_directory_removed_with_one_name_of_a_file_keeps_its_other(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/d/e", parents=True)
    f = ns.create("/d/e/f")
    link(engine, "/d/e/f", "/d/e/again")  # two names inside, one outside
    link(engine, "/d/e/f", "/kept")
    g = ns.create("/d/g")
    link(engine, "/d/g", "/d/e/g2")  # only names inside: goes with the directory
    ns.delete("/d", recursive=True)
    assert ns.lookup("/kept") is f and ns.tree.nlink(f) == 1 and (f.parent, f.name) == (1, "kept")
    assert ns.tree.find(g.id) is None
    assert_fsck_clean(engine)


def test_directory_link_counts_follow_the_tree(engine: Engine) -> None:
    ns, tree = engine.ns, engine.ns.tree
    d = ns.mkdir("/d")
    for name in ("a", "b", "c"):
        ns.mkdir(f"/d/{name}")
    ns.create("/d/file")
    assert tree.nlink(d) == 5 and tree.nlink(tree.root) == 3
    ns.rename("/d/a", "/a")
    assert tree.nlink(d) == 4 and tree.nlink(tree.root) == 4
    ns.rename("/a", "/d/b")  # over an empty directory: one subdirectory less in all
    assert tree.nlink(d) == 4 and tree.nlink(tree.root) == 3
    ns.delete("/d/c")
    assert tree.nlink(d) == 3
    ns.delete("/d", recursive=True)
    assert tree.nlink(tree.root) == 2 and tree.subdirs == {}


def test_special_files_are_files_with_a_type_and_a_number(engine: Engine) -> None:
    ns = engine.ns
    fifo = ns.create_in(1, "fifo", stat.S_IFIFO | 0o640, 3, 4)
    dev = ns.create_in(1, "null", stat.S_IFCHR | 0o600, 0, 0, os.makedev(1, 3))
    assert stat.S_ISFIFO(fifo.mode) and stat.S_IMODE(fifo.mode) == 0o640
    assert stat.S_ISCHR(dev.mode) and dev.ext is not None and dev.ext.rdev == os.makedev(1, 3)
    assert fifo.flags & COMPLETE and fifo.size == 0
    # Type bits of a directory or a symlink in a CreateFile make a regular file, as before.
    odd = ns.create_in(1, "odd", stat.S_IFDIR | 0o644, 0, 0)
    assert stat.S_ISREG(odd.mode) and odd.children is None
    with pytest.raises(err.InvalidArgument):
        engine.fs.links.mknod("/regular", stat.S_IFREG | 0o644, 0, 0, 0)


def test_replay_and_checkpoints_rebuild_every_name(open_engine: OpenEngine) -> None:
    engine = open_engine()
    ns = engine.ns
    ns.mkdir("/z")  # a directory with a higher id than the file's first parent
    ns.mkdir("/a/b", parents=True)
    f = ns.create("/a/f")
    link(engine, "/a/f", "/z/f2")
    link(engine, "/a/f", "/a/b/f3")
    ns.delete("/a/f")
    ns.create_in(1, "null", stat.S_IFCHR | 0o600, 0, 0, os.makedev(1, 3))
    before = digest(engine.state)
    engine.close(checkpoint=False)  # replay
    engine = open_engine()
    assert digest(engine.state) == before
    assert engine.ns.lookup("/z/f2") is engine.ns.lookup("/a/b/f3")
    engine.checkpoint()
    engine.close(checkpoint=True)  # from the checkpoint alone
    engine = open_engine()
    report = engine.journal.report
    assert report is not None and report.checkpoint is not None and report.replayed == 0
    assert digest(engine.state) == before
    node = engine.ns.lookup("/z/f2")
    assert node.id == f.id and engine.ns.lookup("/a/b/f3") is node
    assert engine.ns.tree.nlink(node) == 2
    assert engine.ns.tree.nlink(engine.ns.lookup("/a")) == 3
    assert engine.ns.lookup("/null").ext.rdev == os.makedev(1, 3)  # type: ignore[union-attr]
    assert_fsck_clean(engine)
    engine.close()


def test_fsck_finds_link_counts_that_do_not_match(engine: Engine) -> None:
    ns = engine.ns
    ns.mkdir("/d/e", parents=True)
    f = ns.create("/f")
    link(engine, "/f", "/d/g")
    state: State = engine.state
    assert not check_link_counts(state) and not check_directory_links(state)
    d = ns.lookup("/d")
    del d.children["g"]  # type: ignore[union-attr]  # a name the inode claims, gone by hand
    assert any(f"inode {f.id}: link count 2, named by 1" in p for p in check_link_counts(state))
    d.children["g"] = f  # type: ignore[index]
    state.tree.subdirs[d.id] = 3
    assert any(f"directory {d.id}: link count 5" in p for p in check_directory_links(state))
    state.tree.subdirs[d.id] = 1
    assert not check_no_cycles(state)  # a file reached once per name is no cycle


def test_below_a_local_mount_the_store_gets_real_links(engine: Engine, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    fs = engine.fs
    fs.mkdir("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    m = engine.ns.lookup("/m")
    f = fs.create_as(ROOT, m.id, "f", 0o644)
    assert fs.commit_content(f.id, lambda: io.BytesIO(b"one"))
    fs.link_as(ROOT, f.id, m.id, "g")
    assert os.stat(store.root / "f").st_ino == os.stat(store.root / "g").st_ino
    assert fs.commit_content(f.id, lambda: io.BytesIO(b"two"))  # a new file in the store
    assert (store.root / "g").read_bytes() == b"two"  # and its other name follows
    assert os.stat(store.root / "f").st_ino == os.stat(store.root / "g").st_ino
    # A listing does not take the other name for a file of its own, nor drop it.
    seq = engine.journal.last_seq
    engine.sync.sync("/m")
    assert engine.journal.last_seq - seq <= 1  # at most the listing mark
    assert fs.ns.tree.nlink(f) == 2
    fs.link_as(ROOT, f.id, m.id, "h")
    # The other name's copy lost from the store (a kill before it was made again): when the
    # file's own name goes, the name taking over gets the content first.
    os.unlink(store.root / "g")
    fs.unlink_as(ROOT, m.id, "f")
    assert (store.root / "g").read_bytes() == b"two" and not (store.root / "f").exists()
    assert (f.parent, f.name) == (m.id, "g")
    fifo = fs.mknod_as(ROOT, m.id, "fifo", stat.S_IFIFO | 0o600, 0)
    assert stat.S_ISFIFO(os.lstat(store.root / "fifo").st_mode) and stat.S_ISFIFO(fifo.mode)
    other = engine.ns.mkdir("/elsewhere")
    with pytest.raises(err.CrossDevice):
        fs.link_as(ROOT, f.id, other.id, "x")
    engine.mounts.unmount("/m")

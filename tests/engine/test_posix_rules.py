"""engine/posix.py's rules, without a mount: through the FileSystem facade's calls for the FUSE
frontend (by inode id and name, on behalf of a Caller), and the pure rules directly."""

from __future__ import annotations

import errno
import io
import stat
import time
from pathlib import Path

import pytest

from engine import errors as err
from engine import posix
from engine.engine import Engine
from engine.inode import ROOT_ID, Inode
from engine.posix import Caller
from tests.ufs.stores import LocalStore

ALICE = Caller(1000, 1000, umask=0o022)
BOB = Caller(2000, 2000, umask=0o022)
ROOT = Caller(0, 0, umask=0o022)


def perms(mode: int) -> int:
    return stat.S_IMODE(mode)


def test_new_entries_belong_to_the_caller_less_its_umask(engine: Engine) -> None:
    fs = engine.fs
    who = Caller(1000, 1001, umask=0o027)
    d = fs.mkdir_as(who, ROOT_ID, "dir", 0o777)
    assert (d.uid, d.gid, perms(d.mode)) == (1000, 1001, 0o750) and d.is_dir
    f = fs.create_as(who, ROOT_ID, "file", 0o666)
    assert (f.uid, f.gid, perms(f.mode)) == (1000, 1001, 0o640)
    link = fs.symlink_as(who, d.id, "link", "../file")
    assert (link.uid, link.gid) == (1000, 1001) and link.is_symlink
    assert fs.symlink_target(link.id) == "../file"
    # The umask never adds bits, and a file type in the mode asked for is not kept.
    assert perms(fs.create_as(Caller(1, 1), ROOT_ID, "x", stat.S_IFDIR | 0o4755).mode) == 0o4755


def test_setgid_directory_passes_its_group_on(engine: Engine) -> None:
    fs = engine.fs
    shared = fs.mkdir_as(ROOT, ROOT_ID, "shared", 0o775)
    fs.setattr_of(shared.id, gid=1234, mode=0o2775)
    assert perms(shared.mode) == 0o2775 and shared.gid == 1234
    f = fs.create_as(ALICE, shared.id, "f", 0o664)
    assert f.gid == 1234 and f.uid == ALICE.uid
    assert not f.mode & stat.S_ISGID  # a file does not inherit setgid
    sub = fs.mkdir_as(ALICE, shared.id, "sub", 0o755)
    assert sub.gid == 1234 and sub.mode & stat.S_ISGID  # a directory does, and passes it on
    deeper = fs.mkdir_as(BOB, sub.id, "deeper", 0o700)
    assert deeper.gid == 1234 and perms(deeper.mode) == 0o2700
    plain = fs.mkdir_as(ALICE, ROOT_ID, "plain", 0o2755)  # asked for, outside setgid: kept
    assert plain.gid == ALICE.gid and plain.mode & stat.S_ISGID


def test_chmod_sets_permission_bits_only(engine: Engine) -> None:
    fs = engine.fs
    f = fs.create_as(ALICE, ROOT_ID, "f", 0o644)
    fs.setattr_of(f.id, mode=stat.S_IFDIR | 0o1600, uid=7, mtime=123)
    assert f.mode == stat.S_IFREG | 0o1600 and f.uid == 7 and f.mtime == 123
    assert posix.mode_change(0o177777) == 0o7777


def sticky_tmp(engine: Engine) -> tuple[int, int, int]:
    """/tmp (root's, 1777) holding alice's file and directory; their ids."""
    fs = engine.fs
    tmp = fs.mkdir_as(ROOT, ROOT_ID, "tmp", 0o777)
    fs.setattr_of(tmp.id, mode=0o1777)
    f = fs.create_as(ALICE, tmp.id, "alices", 0o666)
    d = fs.mkdir_as(ALICE, tmp.id, "alices-dir", 0o777)
    return tmp.id, f.id, d.id


def test_sticky_directory_refuses_unlink_by_others(engine: Engine) -> None:
    fs = engine.fs
    tmp, f, d = sticky_tmp(engine)
    with pytest.raises(err.NotPermitted) as caught:
        fs.unlink_as(BOB, tmp, "alices")
    assert caught.value.errno == errno.EPERM
    with pytest.raises(err.NotPermitted):
        fs.rmdir_as(BOB, tmp, "alices-dir")
    with pytest.raises(err.NotPermitted):  # EPERM wins over EISDIR
        fs.unlink_as(BOB, tmp, "alices-dir")
    with pytest.raises(err.NotFound):  # a missing entry: ENOENT, not EPERM
        fs.unlink_as(BOB, tmp, "nobodys")
    assert fs.child_of(tmp, "alices") is not None and fs.child_of(tmp, "alices-dir") is not None
    bobs = fs.create_as(BOB, tmp, "bobs", 0o644)
    fs.unlink_as(BOB, tmp, "bobs")  # his own
    fs.unlink_as(ALICE, tmp, "alices")  # hers
    fs.rmdir_as(ROOT, tmp, "alices-dir")  # root may
    assert fs.find_inode(bobs.id) is None and fs.find_inode(f) is None
    assert fs.find_inode(d) is None
    # The directory's owner may remove anyone's entry.
    own = fs.mkdir_as(BOB, ROOT_ID, "bobs-tmp", 0o777)
    fs.setattr_of(own.id, mode=0o1777)
    fs.create_as(ALICE, own.id, "a", 0o644)
    fs.unlink_as(BOB, own.id, "a")
    # Without the sticky bit, write permission (checked by the kernel) is all it takes.
    fs.create_as(ALICE, ROOT_ID, "open", 0o644)
    fs.unlink_as(BOB, ROOT_ID, "open")


def test_sticky_directory_refuses_rename_by_others(engine: Engine) -> None:
    fs = engine.fs
    tmp, f, _d = sticky_tmp(engine)

    def rename(who: Caller, old: str, new: str, noreplace: bool = False) -> None:
        fs.rename_as(who, (tmp, old), (tmp, new), noreplace=noreplace, exchange=False)

    with pytest.raises(err.NotPermitted):
        rename(BOB, "alices", "mine-now")
    fs.create_as(BOB, tmp, "bobs", 0o644)
    with pytest.raises(err.NotPermitted):  # his own file, but over hers
        rename(BOB, "bobs", "alices")
    with pytest.raises(err.AlreadyExists):  # RENAME_NOREPLACE: EEXIST before EPERM
        rename(BOB, "bobs", "alices", noreplace=True)
    rename(BOB, "alices", "alices")  # onto itself: nothing to refuse
    rename(BOB, "bobs", "bobs-renamed")
    rename(ALICE, "alices", "renamed")
    assert fs.child_of(tmp, "renamed") is fs.find_inode(f)
    rename(ROOT, "renamed", "bobs-renamed")  # root replaces anyone's
    assert fs.child_of(tmp, "bobs-renamed") is fs.find_inode(f)


def test_size_limit(engine: Engine) -> None:
    posix.check_size(100, 100)
    with pytest.raises(err.FileTooLarge) as caught:
        posix.check_size(101, 100)
    assert caught.value.errno == errno.EFBIG
    posix.check_write(True, 90, 10, 100)
    with pytest.raises(err.FileTooLarge):
        posix.check_write(True, 91, 10, 100)
    with pytest.raises(err.BadDescriptor) as bad:  # EBADF before EFBIG
        posix.check_write(False, 1 << 50, 10, 100)
    assert bad.value.errno == errno.EBADF
    fs = engine.fs
    f = fs.create_as(ALICE, ROOT_ID, "f", 0o644)
    d = fs.mkdir_as(ALICE, ROOT_ID, "d", 0o755)
    fs.check_truncate(f, 1 << 40, 1 << 40)
    with pytest.raises(err.FileTooLarge):
        fs.check_truncate(f, 10**15, 1 << 40)
    with pytest.raises(err.IsADirectory):  # EISDIR before EFBIG
        fs.check_truncate(d, 10**15, 1 << 40)


def test_errno_precedence_of_names(engine: Engine) -> None:
    fs = engine.fs
    f = fs.create_as(ALICE, ROOT_ID, "f", 0o644)
    d = fs.mkdir_as(ALICE, ROOT_ID, "d", 0o755)
    long = "x" * 256
    cases = [
        ("parent gone: ENOENT", lambda: fs.mkdir_as(ALICE, 999, long, 0o755), err.NotFound),
        ("parent a file: ENOTDIR before the name",
         lambda: fs.create_as(ALICE, f.id, long, 0o644), err.NotADirectory),
        ("name too long", lambda: fs.mkdir_as(ALICE, d.id, long, 0o755), err.NameTooLong),
        ("'..' is no storable name", lambda: fs.create_as(ALICE, d.id, "..", 0o644),
         err.InvalidName),
        ("mkdir over a file", lambda: fs.mkdir_as(ALICE, ROOT_ID, "f", 0o755),
         err.AlreadyExists),
        ("symlink over a dir", lambda: fs.symlink_as(ALICE, ROOT_ID, "d", "t"),
         err.AlreadyExists),
        ("unlink missing", lambda: fs.unlink_as(ALICE, d.id, "nope"), err.NotFound),
        ("unlink a dir", lambda: fs.unlink_as(ALICE, ROOT_ID, "d"), err.IsADirectory),
        ("rmdir a file", lambda: fs.rmdir_as(ALICE, ROOT_ID, "f"), err.NotADirectory),
        ("lookup missing", lambda: fs.lookup_in(d.id, "nope"), err.NotFound),
        ("lookup in a file", lambda: fs.lookup_in(f.id, "x"), err.NotADirectory),
        ("lookup too long", lambda: fs.lookup_in(d.id, long), err.NameTooLong),
        ("exchange, before anything else",
         lambda: fs.rename_as(ALICE, (f.id, long), (999, "x"), noreplace=False, exchange=True),
         err.InvalidArgument),
        ("rename from a file parent",
         lambda: fs.rename_as(ALICE, (f.id, "a"), (d.id, long), noreplace=False,
                              exchange=False), err.NotADirectory),
        ("rename missing", lambda: fs.rename_as(ALICE, (d.id, "a"), (d.id, "b"),
                                                noreplace=False, exchange=False), err.NotFound),
        ("hard link to a directory", lambda: fs.link_as(ALICE, d.id, ROOT_ID, "d2"),
         err.NotPermitted),
        ("hard link over a name: EEXIST before EPERM",
         lambda: fs.link_as(ALICE, d.id, ROOT_ID, "f"), err.AlreadyExists),
        ("hard link of a gone inode", lambda: fs.link_as(ALICE, 999, ROOT_ID, "g"), err.NotFound),
        ("readlink of a file", lambda: fs.symlink_target(f.id), err.InvalidArgument),
        ("open a directory", lambda: fs.open_inode(d.id, False), err.IsADirectory),
        ("getattr gone", lambda: fs.inode(999), err.NotFound),
    ]  # fmt: skip
    for what, call, expected in cases:
        with pytest.raises(expected):
            call()
        assert expected.errno, what
    assert fs.lookup_in(d.id, ".") is d and fs.lookup_in(d.id, "..") is fs.inode(ROOT_ID)
    assert fs.child_of(f.id, "x") is None and fs.child_of(999, "x") is None


def test_a_removed_open_file_is_stale(engine: Engine) -> None:
    fs = engine.fs
    f = fs.create_as(ALICE, ROOT_ID, "f", 0o644)
    assert fs.still_there(f.id) is f
    fs.unlink_as(ALICE, ROOT_ID, "f")
    with pytest.raises(err.StaleHandle) as caught:
        fs.still_there(f.id)
    assert caught.value.errno == errno.ESTALE
    asked: list[bool] = []

    def content() -> io.BytesIO:
        asked.append(True)
        return io.BytesIO(b"")

    assert not fs.commit_content(f.id, content)
    assert not asked  # the content of an unlinked file is never read


def test_below_a_mount(engine: Engine, tmp_path: Path) -> None:
    """The same calls below a mount reach the UFS first; a read-only mount refuses with EROFS
    before the entry is looked at."""
    store = LocalStore(tmp_path / "ufs")
    fs = engine.fs
    m = fs.mkdir_as(ROOT, ROOT_ID, "m", 0o755)
    engine.mounts.mount("/m", store.uri, store.options)
    d = fs.mkdir_as(ALICE, m.id, "d", 0o777)
    assert (store.root / "d").is_dir() and perms(d.mode) == 0o755
    f = fs.create_as(ALICE, d.id, "f", 0o666)
    assert fs.commit_content(f.id, lambda: io.BytesIO(b"content"))
    assert (store.root / "d" / "f").read_bytes() == b"content"
    assert perms(f.mode) == 0o644 and f.uid == ALICE.uid  # kept by the commit
    assert fs.child_ids(m.id) is not None and list(fs.child_ids(d.id) or []) == [f.id]
    fs.rename_as(ALICE, (d.id, "f"), (m.id, "g"), noreplace=False, exchange=False)
    assert (store.root / "g").read_bytes() == b"content"
    engine.mounts.unmount("/m")
    m2 = fs.mkdir_as(ROOT, ROOT_ID, "ro", 0o755)
    engine.mounts.mount("/ro", store.uri, store.options, readonly=True)
    assert fs.lookup_in(m2.id, "g") is not None
    with pytest.raises(err.ReadOnly):
        fs.mkdir_as(ALICE, m2.id, "g", 0o755)  # EROFS before EEXIST
    with pytest.raises(err.ReadOnly):
        fs.unlink_as(BOB, m2.id, "missing")  # before ENOENT
    with pytest.raises(err.ReadOnly):
        fs.open_inode(fs.lookup_in(m2.id, "g").id, True)  # type: ignore[union-attr]
    assert fs.open_inode(fs.lookup_in(m2.id, "g").id, False)  # type: ignore[union-attr]


_DAY_NS = 24 * 3600 * 10**9


def test_relatime_rule() -> None:
    now = time.time_ns()
    node = Inode(2, 1, "f", 0o100644, 0, 0, 0, now - 3 * _DAY_NS, now - 3 * _DAY_NS, 0, 0, None,
                 None)  # fmt: skip
    assert posix.relatime_due(node, now)  # never read: atime is mtime
    node.ensure_ext().atime = now - 2 * _DAY_NS  # read after the last change, two days ago
    assert posix.relatime_due(node, now)
    node.ensure_ext().atime = now - posix.RELATIME_S * 10**9 // 2  # read after it, half a day ago
    assert not posix.relatime_due(node, now)
    node.ctime = now - 1  # changed since
    assert posix.relatime_due(node, now)

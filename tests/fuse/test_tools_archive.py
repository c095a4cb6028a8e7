"""Archivers and copiers on a real mount, over a local UFS and over S3: `tar` (in and out),
`rsync -aHAX` (twice: the second run finds nothing to do) and `cp -a` of a tree with hard
links, fifos, a symlink, user.* xattrs, odd modes, another owner and past mtimes. Every copy is
compared with its source by one helper: content, types, modes, owners, mtimes, link counts,
which names share an inode, symlink targets and xattrs."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import sqlite3
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.fuse.mounting import Mounted, mounted
from tests.fuse.test_posix import as_nobody
from tests.ufs.stores import AzureStore, GCSStore, LocalStore, S3Store, Store

MIB = 1024 * 1024
PAST = 1_500_000_000  # 2017: mtimes set in the past, with a fraction of a second
NOBODY = 65534


@dataclass(frozen=True)
class Entry:
    """What a tool must keep of one name (a directory's size and inode number are the file
    system's own; st_nlink of a directory counts its subdirectories, so it is compared too)."""

    kind: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    nlink: int
    content: str  # sha256 of a file, target of a symlink, "" otherwise
    xattrs: tuple[tuple[str, bytes], ...]


def user_xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    if path.is_symlink():
        return ()
    names = sorted(n for n in os.listxattr(path) if n.startswith("user."))
    return tuple((n, os.getxattr(path, n)) for n in names)


def describe(path: Path) -> tuple[Entry, int]:
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    content = ""
    if stat.S_ISREG(st.st_mode):
        content = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        content = os.readlink(path)
    entry = Entry(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
                  st.st_nlink, content, user_xattrs(path))  # fmt: skip
    return entry, st.st_ino


@dataclass(frozen=True)
class Tree:
    entries: dict[str, Entry]
    links: frozenset[frozenset[str]]  # the names that share an inode, for each inode with 2+


def walk(root: Path) -> Tree:
    """Every name below ``root`` (and ``root`` itself as "."), by os.lstat, never following a
    symlink; hard links grouped by st_ino. A directory is described once it has been listed
    (a store's directory counts its subdirectories when it has loaded them)."""
    entries: dict[str, Entry] = {}
    inodes: dict[int, set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        entries[os.path.relpath(here, root)], _ = describe(here)
        for name in [*filenames, *(d for d in dirnames if (here / d).is_symlink())]:
            rel = os.path.relpath(here / name, root)
            entries[rel], ino = describe(here / name)
            inodes.setdefault(ino, set()).add(rel)
    links = frozenset(frozenset(names) for names in inodes.values() if len(names) > 1)
    return Tree(entries, links)


def same_as_source(source: Tree, copy: Path) -> None:
    """``copy`` holds what ``source`` held, name for name (differences listed by name)."""
    got = walk(copy)
    diffs = [f"{rel}: {source.entries.get(rel)} != {got.entries.get(rel)}"
             for rel in sorted(set(source.entries) | set(got.entries))
             if source.entries.get(rel) != got.entries.get(rel)]  # fmt: skip
    assert not diffs, "\n".join(diffs)
    assert got.links == source.links


def make_source(root: Path) -> Tree:
    """The tree every tool copies: files of several sizes, hard links of 2 and 3 names across
    directories, a fifo, a symlink, user.* xattrs on files and a directory, modes 0600 and
    0750, setuid and setgid files, a setgid and a sticky directory, files owned by nobody, and
    mtimes in the past."""
    for d in ("a", "b", "c/deep", "private", "shared"):
        (root / d).mkdir(parents=True, exist_ok=True)
    blobs = {
        "empty": b"",
        "a/one-block": os.urandom(4 * MIB),  # exactly one cache block
        "a/multi": os.urandom(9 * MIB + 7),
        "a/small": b"small\n",
        "b/two-names": b"two names\n",
        "c/three-names": os.urandom(100_000),
        "private/secret": b"0600\n",
        "shared/by-nobody": b"owned by nobody\n",
    }
    for rel, data in blobs.items():
        (root / rel).write_bytes(data)
    os.link(root / "b/two-names", root / "a/two-names-too")
    os.link(root / "c/three-names", root / "a/three-2")
    os.link(root / "c/three-names", root / "c/deep/three-3")
    os.mkfifo(root / "b/fifo")
    os.symlink("../a/multi", root / "b/link-to-multi")
    os.setxattr(root / "a/small", "user.colour", b"blue")
    os.setxattr(root / "a/small", "user.binary", bytes(range(256)))
    os.setxattr(root / "c/three-names", "user.linked", b"one inode, three names")
    os.setxattr(root / "shared", "user.tag", b"a directory's")
    os.chown(root / "shared", NOBODY, NOBODY)
    os.chown(root / "shared/by-nobody", NOBODY, NOBODY)
    os.chown(root / "b/fifo", NOBODY, 0)
    os.lchown(root / "b/link-to-multi", NOBODY, NOBODY)
    os.chmod(root / "private/secret", 0o600)
    os.chmod(root / "private", 0o750)
    os.chmod(root / "shared", 0o2775)
    os.chmod(root / "b/fifo", 0o640)
    os.chmod(root / "a/multi", 0o755)
    os.chmod(root / "a/small", 0o4755)  # setuid and setgid files: chown must not leave them
    os.chmod(root / "c/three-names", 0o2750)  # cleared (every tool chowns first, then chmods)
    os.chmod(root / "c/deep", 0o1777)  # sticky
    # Times last, deepest first (a change inside a directory moves its mtime).
    paths = sorted((p for p in root.rglob("*")), key=lambda p: -len(p.parts))
    for i, path in enumerate([*paths, root]):
        t = (PAST + 3600 * i) * 1_000_000_000 + 123_456_789
        os.utime(path, ns=(t, t), follow_symlinks=False)
    return walk(root)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


TAR_X = ("--xattrs", "--xattrs-include=user.*")


def tar_copy(src: Path, dst: Path) -> None:
    """``src`` archived with tar and extracted into ``dst`` (made here) with -p."""
    dst.mkdir()
    archive = dst.parent / f"{dst.name}.tar"
    run("tar", *TAR_X, "-C", str(src), "-cf", str(archive), ".")
    try:
        run("tar", *TAR_X, "-C", str(dst), "-xpf", str(archive))
    finally:
        archive.unlink()


def test_tar_into_the_mount_and_back_out(any_mount: Mounted, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    mnt = any_mount.path
    tar_copy(tmp_path / "src", mnt / "tar")
    same_as_source(source, mnt / "tar")
    tar_copy(mnt / "tar", tmp_path / "back")  # tar c reads it all from the mount
    same_as_source(source, tmp_path / "back")
    after_unmount(any_mount, "tar", source)


def test_tar_into_a_mount_that_serves_metrics(store: Store, tmp_path: Path) -> None:
    """With metrics served, every connector call goes through a counting wrapper: hard links
    and fifos must still reach the store (they answered EINVAL)."""
    source = make_source(tmp_path / "src")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mounted(store, tmp_path, f"metrics.port={port}") as m:
        tar_copy(tmp_path / "src", m.path / "tar")
        same_as_source(source, m.path / "tar")
        after_unmount(m, "tar", source)


def test_rsync_ahax_twice(any_mount: Mounted, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    mnt = any_mount.path
    rsync = ("rsync", "-aHAX", "--itemize-changes", f"{tmp_path / 'src'}/", f"{mnt / 'dst'}/")
    run(*rsync)
    same_as_source(source, mnt / "dst")
    again = run(*rsync)
    assert again.stdout == "", again.stdout  # nothing transferred, no attribute changed
    any_mount.umount()
    any_mount.mount()  # from the checkpoint: still nothing to do
    assert run(*rsync).stdout == ""
    run("rsync", "-aHAX", f"{mnt / 'dst'}/", f"{tmp_path / 'back'}/")  # and out of the mount
    same_as_source(source, tmp_path / "back")
    after_unmount(any_mount, "dst", source)


def test_rsync_ahax_follows_a_changed_source(any_mount: Mounted, tmp_path: Path) -> None:
    """The second run of a backup: content rewritten under three names, xattrs changed and
    removed, a mode and an owner changed, a file deleted, a new name for a linked file, a
    rename, a new fifo; rsync --delete makes the copy the source again, and a third run has
    nothing to do."""
    src = tmp_path / "src"
    make_source(src)
    mnt = any_mount.path
    rsync = ("rsync", "-aHAX", "--delete", "--itemize-changes", f"{src}/", f"{mnt / 'dst'}/")
    run(*rsync)
    (src / "c/three-names").write_bytes(b"new content, three names")
    os.setxattr(src / "a/small", "user.colour", b"red")
    os.removexattr(src / "a/small", "user.binary")
    os.chmod(src / "a/one-block", 0o600)
    os.chown(src / "empty", NOBODY, NOBODY)
    (src / "a/multi").unlink()
    os.link(src / "b/two-names", src / "c/deep/two-3")
    os.rename(src / "private/secret", src / "private/renamed")
    os.mkfifo(src / "c/fifo2")
    for rel in ("a", "b", "c", "c/deep", "c/fifo2", "c/three-names", "private"):
        # rsync compares whole seconds: a time it need not set must differ in them
        os.utime(src / rel, ns=(PAST * 10**9, PAST * 10**9))
    source = walk(src)
    run(*rsync)
    same_as_source(source, mnt / "dst")
    assert run(*rsync).stdout == ""
    after_unmount(any_mount, "dst", source)


def test_cp_a_into_the_mount_and_back_out(any_mount: Mounted, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    mnt = any_mount.path
    run("cp", "-a", str(tmp_path / "src"), str(mnt / "cpa"))
    same_as_source(source, mnt / "cpa")
    run("cp", "-a", str(mnt / "cpa"), str(tmp_path / "back"))
    same_as_source(source, tmp_path / "back")
    after_unmount(any_mount, "cpa", source)


def after_unmount(m: Mounted, prefix: str, source: Tree) -> None:
    """What a copy left: the store holds it, the same home mounted again serves it (a
    checkpoint), and a new home mounting the store sees what the store can say of it."""
    m.umount()
    store_holds(m, prefix, source)
    m.mount()
    same_as_source(source, m.path / prefix)
    m.umount()
    store = m.store  # type: ignore[attr-defined]
    with mounted(store, m.home.parent / "fresh") as fresh:
        same_as_source(as_loaded(source, store), fresh.path / prefix)


def without_symlinks(tree: Tree) -> Tree:
    kept = {rel: e for rel, e in tree.entries.items() if not stat.S_ISLNK(e.kind)}
    return Tree(kept, tree.links)


def as_loaded(tree: Tree, store: LocalStore | S3Store | AzureStore) -> Tree:
    """``tree`` as a new home loads it from its store (docs/mount.md): no symlinks, each name
    of a hard link a file of its own, and on S3 no xattrs (they are not read back)."""
    keep_xattrs = isinstance(store, LocalStore)
    entries = {
        rel: replace(e, nlink=e.nlink if stat.S_ISDIR(e.kind) else 1,
                     xattrs=e.xattrs if keep_xattrs else ())
        for rel, e in without_symlinks(tree).entries.items()
    }  # fmt: skip
    return Tree(entries, frozenset())


def store_holds(m: Mounted, prefix: str, source: Tree) -> None:
    """After unmount, the store itself: a local directory holds the same tree (real links,
    fifos, xattrs, modes, owners, mtimes); S3 what docs/mount.md says it sees."""
    store = m.store  # type: ignore[attr-defined]
    source = without_symlinks(source)  # a symlink lives in the namespace only (docs/mount.md)
    if isinstance(store, LocalStore):
        same_as_source(source, store.root / prefix)
    else:
        assert isinstance(store, (S3Store, AzureStore, GCSStore))
        s3_holds(store, prefix, source)


def s3_holds(store: S3Store | AzureStore | GCSStore, prefix: str, source: Tree) -> None:
    """Each name an object (a directory its marker) whose x-amz-meta-mode, -uid, -gid, -mtime
    and xattr header are the source's (an Azure blob's metadata of the same names); every name
    of a hard link a copy of the same bytes."""
    for rel, entry in source.entries.items():
        key = f"ds/{prefix}" if rel == "." else f"ds/{prefix}/{rel}"
        if stat.S_ISDIR(entry.kind):
            key += "/"
        meta = store.metadata(key[3:])
        assert meta.get("mode") == str(entry.kind | entry.mode), (rel, meta)
        assert (meta.get("uid"), meta.get("gid")) == (str(entry.uid), str(entry.gid)), (rel, meta)
        seconds, ns = divmod(entry.mtime_ns, 1_000_000_000)
        assert meta.get("mtime") == f"{seconds}.{ns:09d}", (rel, meta)
        held = tuple(sorted(store.xattrs(key[3:]).items()))
        assert held == entry.xattrs, rel
        if stat.S_ISREG(entry.kind):
            body = store.get(key[3:])
            assert hashlib.sha256(body).hexdigest() == entry.content, rel


def test_sqlite_in_wal_mode(any_mount: Mounted, tmp_path: Path) -> None:
    """WAL: a -shm file mapped shared by two connections, the -wal file appended and
    checkpointed into the database; after the last close the store holds the database alone."""
    mnt = any_mount.path
    db = sqlite3.connect(mnt / "wal.db")
    assert db.execute("pragma journal_mode=wal").fetchone() == ("wal",)
    db.execute("create table t (k integer primary key, v text)")
    reader = sqlite3.connect(mnt / "wal.db")
    for i in range(30):
        with db:
            db.executemany("insert into t (v) values (?)", [(f"r{i}-{j}",) for j in range(100)])
        assert reader.execute("select count(*) from t").fetchone() == ((i + 1) * 100,)
    db.execute("pragma wal_checkpoint(truncate)")
    with db:
        db.execute("delete from t where k % 3 = 0")
    reader.close()
    db.close()
    db = sqlite3.connect(mnt / "wal.db")
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    assert db.execute("select count(*) from t").fetchone() == (2000,)
    db.close()
    any_mount.umount()
    store = any_mount.store  # type: ignore[attr-defined]
    assert {k for k in store.keys() if k.startswith("wal.db")} == {"wal.db"}
    copy = tmp_path / "copy.db"
    copy.write_bytes(store.get("wal.db"))
    check = sqlite3.connect(copy)
    assert check.execute("pragma integrity_check").fetchone() == ("ok",)
    assert check.execute("select count(*) from t").fetchone() == (2000,)
    check.close()


def acl(*entries: tuple[int, int, int]) -> bytes:
    """A system.posix_acl_* value as Linux encodes it: version 2, then (tag, perm, id)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_posix_acls_are_refused_as_a_file_system_without_them(
    any_mount: Mounted, tmp_path: Path
) -> None:
    """The mount keeps no POSIX ACLs (docs/mount.md): a tree that carries one is copied whole
    but its ACL, and rsync -A and cp -a say so (exit 23 and 1), as onto a file system mounted
    without ACLs; never an ACL shown that the kernel would not enforce."""
    src = tmp_path / "src"
    make_source(src)
    anyone = 0xFFFFFFFF
    # user::rw- user:1000:r-- group::r-- mask::r-- other::---
    os.setxattr(src / "a/small", "system.posix_acl_access",
                acl((1, 6, anyone), (2, 4, 1000), (4, 4, anyone), (0x10, 4, anyone),
                    (0x20, 0, anyone)))  # fmt: skip
    source = walk(src)
    mnt = any_mount.path
    done = subprocess.run(["rsync", "-aHAX", f"{src}/", f"{mnt / 'dst'}/"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 23 and "Operation not supported" in done.stderr, done.stderr
    same_as_source(source, mnt / "dst")  # all but the ACL, its mode bits included
    with pytest.raises(OSError) as exc:
        os.getxattr(mnt / "dst/a/small", "system.posix_acl_access")
    assert exc.value.errno == errno.ENODATA
    run("rsync", "-aHX", f"{src}/", f"{mnt / 'dst'}/")  # without -A: nothing left to do
    done = subprocess.run(["cp", "-a", str(src), str(mnt / "cpa")], capture_output=True, text=True)
    assert done.returncode == 1 and "preserving permissions" in done.stderr, done.stderr
    same_as_source(source, mnt / "cpa")


@pytest.fixture
def other_user_mount() -> Iterator[Mounted]:
    """A mount over a local store that user nobody may use (-o allow_other), in a directory
    it can reach (a test's tmp_path is root's only); removed after."""
    base = Path(tempfile.mkdtemp(prefix="shoal-tools-"))
    base.chmod(0o755)
    try:
        with mounted(LocalStore(base / "ufs"), base, "allow_other") as m:
            yield m
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_mkfifo_by_another_user_is_theirs_in_the_store(other_user_mount: Mounted) -> None:
    """mkfifo(1) as user nobody: the store's fifo is nobody's too, with the mode asked for
    (the daemon's own umask does not narrow it), as a new home sees it."""
    shared = other_user_mount.path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o1777)
    out = as_nobody(f"os.umask(0)\nos.mkfifo({str(shared / 'fifo')!r}, 0o666)\n")
    assert out.returncode == 0, out.stderr
    other_user_mount.umount()
    store = other_user_mount.store  # type: ignore[attr-defined]
    st = os.lstat(store.root / "shared/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)

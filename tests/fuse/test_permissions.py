"""Owners, modes and times of the store, through a real allow_other mount over a local UFS and
over S3 (moto over HTTP): what the store's own permissions refuse, the mount refuses to user
nobody too, and what is set through the mount reaches the store."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted, mounted
from tests.fuse.otheruser import NOBODY, OTHER, nobody_says, reachable_dir, store_of
from tests.ufs.stores import LocalStore, S3Store, Store

FILE, DIR = stat.S_IFREG, stat.S_IFDIR


class StoreView:
    """Puts entries with owner and mode into a store behind Shoal's back and reads them back:
    a local directory's own attributes, an S3 object's x-amz-meta-* as s3fs-fuse writes them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def local(self) -> Path | None:
        return self.store.root if isinstance(self.store, LocalStore) else None

    def put(self, key: str, data: bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
        if self.local is not None:
            self.store.put(key, data)
            os.chown(self.local / key, uid, gid)
            os.chmod(self.local / key, mode)
            return
        assert isinstance(self.store, S3Store)
        meta = {"mode": str(FILE | mode), "uid": str(uid), "gid": str(gid)}
        self.store.client.put_object(
            Bucket=self.store.bucket, Key=f"ds/{key}", Body=data, Metadata=meta
        )

    def mkdir(self, key: str, mode: int, uid: int = 0, gid: int = 0) -> None:
        if self.local is not None:
            (self.local / key).mkdir()
            os.chown(self.local / key, uid, gid)
            os.chmod(self.local / key, mode)
            return
        assert isinstance(self.store, S3Store)
        meta = {"mode": str(DIR | mode), "uid": str(uid), "gid": str(gid)}
        self.store.client.put_object(
            Bucket=self.store.bucket, Key=f"ds/{key}/", Body=b"", Metadata=meta
        )

    def attrs(self, key: str, directory: bool = False) -> tuple[int, int, int, int]:
        """(full st_mode, uid, gid, mtime in ns) the store holds for ``key``."""
        if self.local is not None:
            st = os.stat(self.local / key)
            return st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns
        assert isinstance(self.store, S3Store)
        object_key = f"ds/{key}/" if directory else f"ds/{key}"
        meta = self.store.client.head_object(Bucket=self.store.bucket, Key=object_key)["Metadata"]
        seconds, _dot, fraction = meta.get("mtime", "0").partition(".")
        mtime = int(seconds) * 10**9 + int(fraction.ljust(9, "0")[:9] or 0)
        return int(meta["mode"]), int(meta["uid"]), int(meta["gid"]), mtime


@pytest.fixture(params=["local", "s3"])
def shared(request: pytest.FixtureRequest) -> Iterator[tuple[Mounted, StoreView]]:
    """A store holding entries of several owners and modes (made before the mount, so they
    are loaded from it), mounted with -o allow_other in a directory other users can reach."""
    with reachable_dir("shoal-perms-") as base:
        store = store_of(request.param, base, request)
        view = StoreView(store)
        view.put("secret", b"root's secret", 0o600)
        view.put("public", b"everyone reads", 0o644)
        view.put("theirs", b"user 1000's", 0o600, OTHER, OTHER)
        view.mkdir("closed", 0o700)
        view.put("closed/inside", b"hidden", 0o644)
        view.mkdir("sticky", 0o1777)
        view.put("sticky/others", b"not nobody's", 0o666, OTHER, OTHER)
        view.put("sticky/roots", b"root's in /tmp", 0o666)
        view.put("sticky/nobodys", b"nobody's own", 0o644, NOBODY, NOBODY)
        view.mkdir("open", 0o755)
        with mounted(store, base, "allow_other") as m:
            yield m, view


def test_the_stores_permissions_hold_for_another_user(
    shared: tuple[Mounted, StoreView],
) -> None:
    m, view = shared
    mnt = m.path
    lines = nobody_says(
        f"m = {str(mnt)!r}\n" + "print(open(m + '/public').read())\n"
        "attempt('read secret', lambda: open(m + '/secret').read())\n"
        "attempt('read theirs', lambda: open(m + '/theirs').read())\n"
        "attempt('list closed', lambda: os.listdir(m + '/closed'))\n"
        "attempt('open in closed', lambda: open(m + '/closed/inside').read())\n"
        "attempt('stat in closed', lambda: os.stat(m + '/closed/inside'))\n"
        "attempt('write public', lambda: open(m + '/public', 'a').write('x'))\n"
        "attempt('truncate public', lambda: os.truncate(m + '/public', 0))\n"
        "attempt('chmod public', lambda: os.chmod(m + '/public', 0o666))\n"
        "attempt('chmod closed', lambda: os.chmod(m + '/closed', 0o777))\n"
        "attempt('utime public', lambda: os.utime(m + '/public', (0, 0)))\n"
        "attempt('unlink public', lambda: os.unlink(m + '/public'))\n"
        "attempt('create in open', lambda: open(m + '/open/new', 'w'))\n"
        "attempt('mkdir in open', lambda: os.mkdir(m + '/open/new'))\n"
        "attempt('unlink in sticky', lambda: os.unlink(m + '/sticky/others'))\n"
        "attempt('rename in sticky', lambda: os.rename(m + '/sticky/others', m + '/sticky/x'))\n"
        "attempt('unlink roots in sticky', lambda: os.unlink(m + '/sticky/roots'))\n"
        "attempt('rename roots in sticky',"
        " lambda: os.rename(m + '/sticky/roots', m + '/sticky/x'))\n"
        "attempt('create in sticky', lambda: open(m + '/sticky/mine', 'w').write('mine'))\n"
        "attempt('rename mine over roots',"
        " lambda: os.rename(m + '/sticky/mine', m + '/sticky/roots'))\n"
        "attempt('chown mine', lambda: os.chown(m + '/sticky/mine', 0, 0))\n"
        "attempt('rename mine', lambda: os.rename(m + '/sticky/mine', m + '/sticky/mine2'))\n"
        "attempt('rename own', lambda: os.rename(m + '/sticky/nobodys', m + '/sticky/own2'))\n"
        "attempt('unlink own', lambda: os.unlink(m + '/sticky/own2'))\n"
    )
    assert lines == [
        "everyone reads",
        "read secret EACCES",
        "read theirs EACCES",
        "list closed EACCES",
        "open in closed EACCES",
        "stat in closed EACCES",
        "write public EACCES",
        "truncate public EACCES",
        "chmod public EPERM",
        "chmod closed EPERM",
        "utime public EPERM",
        "unlink public EACCES",
        "create in open EACCES",
        "mkdir in open EACCES",
        "unlink in sticky EPERM",
        "rename in sticky EPERM",
        "unlink roots in sticky EPERM",
        "rename roots in sticky EPERM",
        "create in sticky allowed",
        "rename mine over roots EPERM",
        "chown mine EPERM",
        "rename mine allowed",
        "rename own allowed",
        "unlink own allowed",
    ]
    assert (mnt / "public").read_bytes() == b"everyone reads"
    assert (mnt / "sticky" / "others").read_bytes() == b"not nobody's"
    assert sorted(os.listdir(mnt / "sticky")) == ["mine2", "others", "roots"]
    assert sorted(os.listdir(mnt / "open")) == []
    # The store holds what the refusals left, and what nobody's own changes made.
    store = view.store
    assert (
        store.get("sticky/roots") == b"root's in /tmp" and store.get("public") == b"everyone reads"
    )
    assert store.get("sticky/mine2") == b"mine"
    assert (
        not {"sticky/x", "sticky/mine", "sticky/nobodys", "sticky/own2", "open/new"} & store.keys()
    )
    # What the store holds is what the mount shows.
    for name, mode, uid in [
        ("secret", 0o600, 0), ("public", 0o644, 0), ("theirs", 0o600, OTHER),
        ("closed", 0o700, 0), ("sticky", 0o1777, 0), ("sticky/others", 0o666, OTHER),
    ]:  # fmt: skip
        st = os.stat(mnt / name)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, uid), name
    assert os.stat(mnt / "sticky" / "mine2").st_uid == NOBODY
    if view.local is not None:  # S3 markers put above carry no mtime
        for name in ("closed", "closed/inside", "secret"):
            assert os.stat(mnt / name).st_mtime_ns == os.stat(view.local / name).st_mtime_ns


def test_changes_through_the_mount_reach_the_store(shared: tuple[Mounted, StoreView]) -> None:
    m, view = shared
    mnt = m.path
    old = os.umask(0)
    try:
        os.mkdir(mnt / "made", 0o700)
        fd = os.open(mnt / "made" / "new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        os.write(fd, b"new file")
        os.close(fd)
    finally:
        os.umask(old)
    assert view.attrs("made", directory=True)[:3] == (DIR | 0o700, 0, 0)
    assert view.attrs("made/new")[:3] == (FILE | 0o640, 0, 0)
    os.chmod(mnt / "public", 0o604)
    os.chown(mnt / "public", OTHER, OTHER + 1)
    os.utime(mnt / "public", ns=(1_500_000_000_250_000_000, 1_500_000_000_250_000_000))
    assert view.attrs("public") == (FILE | 0o604, OTHER, OTHER + 1, 1_500_000_000_250_000_000)
    os.chmod(mnt / "closed", 0o750)
    os.chown(mnt / "closed", 0, OTHER)
    assert view.attrs("closed", directory=True)[:3] == (DIR | 0o750, 0, OTHER)
    # nobody's private directories, renamed: the store's copies at the new path keep their
    # owner and mode (once a local store's were remade there as root's 0755, and a sync then
    # showed them so).
    sticky = str(mnt / "sticky")
    lines = nobody_says(
        f"s = {sticky!r}\n"
        "open(s + '/by-nobody', 'w').write('n')\n"
        "os.mkdir(s + '/nd', 0o700)\n"
        "os.mkdir(s + '/nd/sub', 0o750)\n"
        "open(s + '/nd/sub/f', 'w').write('f')\n"
        "os.rename(s + '/nd', s + '/nd2')\n"
    )
    assert lines == []
    assert view.attrs("sticky/by-nobody")[1:3] == (NOBODY, NOBODY)
    assert view.attrs("sticky/nd2", directory=True)[:3] == (DIR | 0o700, NOBODY, NOBODY)
    assert view.attrs("sticky/nd2/sub", directory=True)[:3] == (DIR | 0o750, NOBODY, NOBODY)
    # The mount shows what it set, also after a restart (journal, and the store agrees).
    m.umount()
    m.mount("allow_other")
    shoal("fs", "sync", "-R", "/", home=m.home)
    st = os.stat(mnt / "public")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o604, OTHER, OTHER + 1)
    assert st.st_mtime_ns == 1_500_000_000_250_000_000
    assert (mnt / "public").read_bytes() == b"everyone reads"
    assert stat.S_IMODE(os.stat(mnt / "made").st_mode) == 0o700
    for name, mode in (("sticky/nd2", 0o700), ("sticky/nd2/sub", 0o750)):
        st = os.stat(mnt / name)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, NOBODY, NOBODY), name


def test_a_change_in_the_store_is_followed_by_a_sync(shared: tuple[Mounted, StoreView]) -> None:
    m, view = shared
    mnt = m.path
    # An S3 listing reads no object's metadata (docs/ufs.md): root is shown provisional ones
    # until a GET, such as this read, brings the store's.
    assert (mnt / "public").read_bytes() == b"everyone reads"
    assert stat.S_IMODE(os.stat(mnt / "public").st_mode) == 0o644
    if view.local is not None:  # the same file, locked
        os.chown(view.local / "public", OTHER, OTHER)
        os.chmod(view.local / "public", 0o600)
    else:  # the same bytes (so the same ETag), locked
        view.put("public", b"everyone reads", 0o600, OTHER, OTHER)
    shoal("fs", "sync", "/", home=m.home)
    st = os.stat(mnt / "public")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, OTHER, OTHER)
    assert nobody_says(
        f"m = {str(mnt)!r}\n" + "attempt('read', lambda: open(m + '/public').read())\n"
    ) == ["read EACCES"]

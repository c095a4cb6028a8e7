"""Names through a real mount: a local store's names that are not UTF-8 (b"caf\\xe9") are files
like any other — listed, read, made, renamed, linked, kept across a clean restart (checkpoint)
and a kill -9 (replay) — and S3 refuses what it cannot hold (names that are not UTF-8: EINVAL;
keys over 1,024 bytes: ENAMETOOLONG) before anything reaches the bucket or the journal."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.bench.s3server import S3Server
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted, mounted
from tests.fuse.otheruser import NOBODY, nobody_says
from tests.ufs.stores import LocalStore, S3Store


def _tree(top: Path) -> dict[bytes, bytes | None]:
    """Every file (its content), symlink (b"-> target") and directory (None) below ``top``, by
    its path's bytes."""
    out: dict[bytes, bytes | None] = {}
    root = os.fsencode(top)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = b"-> " + os.readlink(path)
            elif os.path.isdir(path):
                out[rel] = None
            else:
                with open(path, "rb") as f:
                    out[rel] = f.read()
    return out


def test_a_store_directory_holding_a_name_that_is_not_utf8_lists_and_serves(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "ufs")
    ufs = os.fsencode(store.root)
    os.mkdir(ufs + b"/r\xe9")  # in the root: once, the whole mount answered EIO
    os.makedirs(ufs + b"/sub/caf\xe9")
    with open(ufs + b"/sub/caf\xe9/menu.txt", "wb") as f:
        f.write(b"croissant")
    with open(ufs + b"/sub/ok.txt", "wb") as f:
        f.write(b"fine")
    with mounted(store, tmp_path) as m:
        mnt = os.fsencode(m.path)
        assert sorted(os.listdir(mnt)) == [b"r\xe9", b"sub"]
        assert sorted(os.listdir(mnt + b"/sub")) == [b"caf\xe9", b"ok.txt"]
        with open(mnt + b"/sub/caf\xe9/menu.txt", "rb") as f:
            assert f.read() == b"croissant"
        with open(mnt + b"/sub/caf\xe9/th\xe9.txt", "wb") as f:  # made inside it, too
            f.write(b"earl grey")
        with open(ufs + b"/sub/caf\xe9/th\xe9.txt", "rb") as f:
            assert f.read() == b"earl grey"


def test_names_that_are_not_utf8_made_through_the_mount_survive_restarts(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "ufs")
    with mounted(store, tmp_path) as m:
        mnt = os.fsencode(m.path)
        os.mkdir(mnt + b"/n\xe9w")
        with open(mnt + b"/n\xe9w/f\xff", "wb") as f:
            f.write(b"content")
        os.rename(mnt + b"/n\xe9w/f\xff", mnt + b"/n\xe9w/g\xfd")
        os.symlink(b"n\xe9w/g\xfd", mnt + b"/l\xfc")
        with open(mnt + b"/l\xfc", "rb") as f:
            assert f.read() == b"content"
        made = {b"n\xe9w": None, b"n\xe9w/g\xfd": b"content"}
        assert _tree(store.root) == made  # the symlink lives in the namespace only
        seen = _tree(m.path)
        assert seen == {**made, b"l\xfc": b"-> n\xe9w/g\xfd"}

        m.umount()  # a clean stop: the next start loads a checkpoint
        m.mount()
        assert _tree(m.path) == seen
        with open(mnt + b"/n\xe9w/h\xfb", "wb") as f:  # journaled after that checkpoint
            f.write(b"after")
        seen[b"n\xe9w/h\xfb"] = b"after"
        m.kill9()  # the next start replays the log
        m.mount()
        assert _tree(m.path) == seen

        listing = shoal("fs", "ls", "--json", str(m.path / "n\udce9w"), home=m.home)
        names = sorted(json.loads(line)["path"] for line in listing.stdout.splitlines())
        assert names == ["/n\\xe9w/g\\xfd", "/n\\xe9w/h\\xfb"]  # the bytes, escaped
        m.umount()
    shoal("fsck", home=m.home)
    # The command line's views of the home, offline: escaped, never a traceback.
    listed = shoal("fs", "ls", "-R", "/", home=m.home).stdout
    assert "l\\xfc -> n\\xe9w/g\\xfd" in listed and "/n\\xe9w:" in listed
    dump = shoal("journal", "dump", "--format", "jsonl", home=m.home).stdout
    assert '"name":"h\\udcfb"' in dump  # the entries the log still holds after its checkpoint
    out = tmp_path / "inspect.sqlite"
    shoal("journal", "inspect", "--out", str(out), home=m.home)
    with sqlite3.connect(out) as db:  # a name that is not UTF-8: a BLOB of its bytes
        stored = {row[0] for row in db.execute("SELECT name FROM inodes")}
    assert {b"n\xe9w", b"g\xfd", b"h\xfb", b"l\xfc"} <= stored
    assert "Traceback" not in (m.home / "logs" / "shoal.log").read_text(errors="replace")


@pytest.fixture
def s3_mount(s3_server: S3Server, tmp_path: Path) -> Iterator[Mounted]:
    with mounted(S3Store(s3_server), tmp_path) as m:
        yield m


def _refused(m: Mounted, attempts: dict[str, Callable[[], object]], code: int) -> None:
    """Each attempt fails with ``code``, and neither the bucket nor the journal changes."""
    store: S3Store = m.store  # type: ignore[attr-defined]
    keys = store.keys()
    for what, attempt in attempts.items():
        with pytest.raises(OSError) as refused:
            attempt()
        assert refused.value.errno == code, (what, refused.value)
        assert store.keys() == keys, what


def _journaled_names(m: Mounted) -> str:
    m.umount()
    return shoal("journal", "dump", "--format", "jsonl", home=m.home).stdout


def test_s3_refuses_names_that_are_not_utf8_with_einval(s3_mount: Mounted) -> None:
    mnt = os.fsencode(s3_mount.path)
    os.mkdir(mnt + b"/dir")
    with open(mnt + b"/file", "wb") as f:
        f.write(b"x")
    _refused(
        s3_mount,
        {
            "mkdir": lambda: os.mkdir(mnt + b"/bad\xe9"),
            "create": lambda: open(mnt + b"/dir/bad\xe9", "wb"),
            "rename": lambda: os.rename(mnt + b"/file", mnt + b"/dir/bad\xe9"),
            "rename dir": lambda: os.rename(mnt + b"/dir", mnt + b"/bad\xe9"),
            "symlink": lambda: os.symlink(b"file", mnt + b"/bad\xe9"),
        },
        errno.EINVAL,
    )
    assert sorted(os.listdir(mnt)) == [b"dir", b"file"]
    with pytest.raises(FileNotFoundError):  # a lookup of such a name: there is none
        os.stat(mnt + b"/bad\xe9")
    assert "bad" not in _journaled_names(s3_mount)


def test_s3_refuses_keys_over_1024_bytes_with_enametoolong(s3_mount: Mounted) -> None:
    mnt = os.fsencode(s3_mount.path)
    # Keys are "ds/" + the path in the mount: this directory's is 3 + 4 * 251 - 1 = 1006
    # bytes, and a file in it with a name of 17 bytes has a key of exactly 1,024.
    deep = mnt + b"/" + b"/".join(c * 250 for c in (b"a", b"b", b"c", b"d"))
    os.makedirs(deep)
    with open(deep + b"/" + b"f" * 17, "wb") as f:
        f.write(b"fits")
    with open(mnt + b"/file", "wb") as f:
        f.write(b"x")
    _refused(
        s3_mount,
        {
            "create": lambda: open(deep + b"/" + b"g" * 18, "wb"),
            "mkdir": lambda: os.mkdir(deep + b"/" + b"h" * 17),
            "rename": lambda: os.rename(mnt + b"/file", deep + b"/" + b"r" * 18),
            "rename dir": lambda: os.rename(mnt + b"/" + b"a" * 250, mnt + b"/" + b"a" * 251),
            "symlink": lambda: os.symlink(b"file", deep + b"/" + b"s" * 18),
        },
        errno.ENAMETOOLONG,
    )
    with open(deep + b"/" + b"f" * 17, "rb") as f:
        assert f.read() == b"fits"
    dump = _journaled_names(s3_mount)
    assert not any(c * 17 in dump for c in "ghrs") and "a" * 251 not in dump


def test_names_as_another_user(shared_any_mount: Mounted) -> None:
    """User nobody, through an allow_other mount, makes and renames a name that is not UTF-8
    where the store holds one (local), and gets EINVAL where it cannot (S3); a key over 1,024
    bytes is ENAMETOOLONG on S3; nothing refused reaches the store."""
    pub = os.fsencode(shared_any_mount.path / "pub")
    store = shared_any_mount.store  # type: ignore[attr-defined]
    # The key of a file in it: "ds/pub/" + 4 x 251 bytes + its name, over 1,024 with 25.
    deep = pub + b"/" + b"/".join(c * 250 for c in (b"a", b"b", b"c", b"d"))
    code = (
        f"p, deep = {pub!r}, {deep!r}\n"
        "attempt('create', lambda: open(p + b'/caf\\xe9', 'wb').write(b'x'))\n"
        "attempt('mkdir', lambda: os.mkdir(p + b'/d\\xe9'))\n"
        "attempt('rename', lambda: os.rename(p + b'/caf\\xe9', p + b'/th\\xe9'))\n"
        "os.makedirs(deep)\n"
        "attempt('long key', lambda: open(deep + b'/' + b'k' * 25, 'wb').close())\n"
    )
    said = nobody_says(code)
    if isinstance(store, LocalStore):
        assert said == ["create allowed", "mkdir allowed", "rename allowed", "long key allowed"]
        assert sorted(os.listdir(pub)) == [b"a" * 250, b"d\xe9", b"th\xe9"]
        assert os.stat(pub + b"/th\xe9").st_uid == NOBODY
        assert os.path.exists(os.fsencode(store.root) + b"/pub/th\xe9")
    else:
        assert said == ["create EINVAL", "mkdir EINVAL", "rename ENOENT", "long key ENAMETOOLONG"]
        assert os.listdir(pub) == [b"a" * 250]
        assert not any("k" * 25 in key or "\udce9" in key for key in store.keys())

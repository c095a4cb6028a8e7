"""Extended attributes through a real mount, over a local UFS and over S3 (moto over HTTP):
user.* ones kept (journaled, checkpointed, replayed) and handed to the store, the others
refused the way tools expect, and rsync -X and cp -a working."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted, mounted
from tests.fuse.otheruser import nobody_says
from tests.ufs.stores import AzureStore, GCSStore, LocalStore, Store

# Over the 128 bytes a first getxattr(2) gets, so the ERANGE retry is taken; within what an
# ext4 store keeps per file (a block), and over S3's 2 KB of metadata.
BIG = bytes(range(256)) * 10


def attributes(path: Path) -> dict[str, bytes]:
    return {name: os.getxattr(path, name) for name in sorted(os.listxattr(path))}


def test_user_attributes_round_trip_and_survive_restarts(any_mount: Mounted) -> None:
    mnt = any_mount.path
    f, d = mnt / "file", mnt / "dir"
    f.write_bytes(b"content")
    d.mkdir()
    os.setxattr(f, "user.colour", b"blue")
    os.setxattr(f, "user.binary", bytes(range(256)))
    os.setxattr(d, "user.tag", b"")
    if isinstance(any_mount.store, LocalStore):  # type: ignore[attr-defined]
        os.setxattr(f, "user.big", BIG)  # S3 metadata holds 2 KB (see the test below)
    os.setxattr(f, "user.gone", b"x")
    os.removexattr(f, "user.gone")
    with pytest.raises(OSError) as exc:
        os.setxattr(f, "user.colour", b"red", os.XATTR_CREATE)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(OSError) as exc:
        os.setxattr(f, "user.none", b"x", os.XATTR_REPLACE)
    assert exc.value.errno == errno.ENODATA
    with pytest.raises(OSError) as exc:
        os.getxattr(f, "user.none")
    assert exc.value.errno == errno.ENODATA
    with pytest.raises(OSError) as exc:
        os.removexattr(f, "user.none")
    assert exc.value.errno == errno.ENODATA
    os.setxattr(f, "user.colour", b"green", os.XATTR_REPLACE)
    expected = {"user.binary": bytes(range(256)), "user.colour": b"green"}
    if isinstance(any_mount.store, LocalStore):  # type: ignore[attr-defined]
        expected["user.big"] = BIG
    assert attributes(f) == dict(sorted(expected.items()))
    assert attributes(d) == {"user.tag": b""}

    any_mount.umount()  # a clean stop: a checkpoint holds them
    any_mount.mount()
    assert attributes(f) == dict(sorted(expected.items()))
    os.setxattr(d, "user.after", b"replayed")
    any_mount.kill9()  # no checkpoint since: the log's entries are replayed
    any_mount.mount()
    assert attributes(f) == dict(sorted(expected.items()))
    assert attributes(d) == {"user.after": b"replayed", "user.tag": b""}
    any_mount.umount()
    assert "clean" in shoal("fsck", home=any_mount.home).stdout


def test_the_store_holds_them(any_mount: Mounted) -> None:
    store: Store = any_mount.store  # type: ignore[attr-defined]
    mnt = any_mount.path
    (mnt / "early").write_bytes(b"1")
    os.setxattr(mnt / "early", "user.a", b"on a file in the store")
    # Set while the file is open and its content not yet in the store (cp -a's order): the
    # store gets them with the content.
    with open(mnt / "late", "wb") as out:
        out.write(b"2")
        os.setxattr(out.fileno(), "user.b", b"with the content")
    assert store.xattrs("early") == {"user.a": b"on a file in the store"}
    assert store.xattrs("late") == {"user.b": b"with the content"}
    # A rewrite keeps them (a local store's new file replaces the old one by a rename).
    (mnt / "early").write_bytes(b"rewritten")
    assert store.xattrs("early") == {"user.a": b"on a file in the store"}
    os.removexattr(mnt / "early", "user.a")
    assert store.xattrs("early") == {}
    assert store.get("early") == b"rewritten"


def test_attributes_set_in_a_local_store_are_loaded(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    store.put("d/f", b"data")
    os.setxattr(store.root / "d" / "f", "user.origin", b"store")
    os.setxattr(store.root / "d", "user.dir", b"yes")
    os.setxattr(bytes(store.root / "d" / "f"), b"user.\xff", b"a name that is not UTF-8")
    with mounted(store, tmp_path) as m:
        assert attributes(m.path / "d" / "f") == {"user.origin": b"store"}
        assert attributes(m.path / "d") == {"user.dir": b"yes"}


def test_other_namespaces_are_refused_as_tools_expect(any_mount: Mounted) -> None:
    f = any_mount.path / "file"
    f.write_bytes(b"x")
    for name in ("trusted.t", "security.s"):
        with pytest.raises(OSError) as exc:
            os.setxattr(f, name, b"v")
        assert exc.value.errno == errno.EOPNOTSUPP, name
        with pytest.raises(OSError) as exc:
            os.getxattr(f, name)
        assert exc.value.errno == errno.ENODATA, name
    with pytest.raises(OSError) as exc:  # no ACL: what a file system without ACLs answers
        os.getxattr(f, "system.posix_acl_access")
    assert exc.value.errno in (errno.ENODATA, errno.EOPNOTSUPP)
    os.symlink("file", any_mount.path / "link")
    with pytest.raises(OSError) as exc:  # user.* only on files and directories, as Linux
        os.setxattr(any_mount.path / "link", "user.a", b"v", follow_symlinks=False)
    assert exc.value.errno == errno.EPERM


def test_s3_metadata_limit_is_refused_clearly(any_mount: Mounted) -> None:
    f = any_mount.path / "file"
    f.write_bytes(b"x")
    if isinstance(any_mount.store, LocalStore):  # type: ignore[attr-defined]
        os.setxattr(f, "user.large", bytes(4000))  # a local store holds it
        assert os.getxattr(f, "user.large") == bytes(4000)
        return
    # Over what S3's 2 KB of metadata leave them; over Azure's 8 KiB once encoded (base64), and
    # the 6 KiB of GCS's 8 KiB.
    large = 6000 if isinstance(any_mount.store, (AzureStore, GCSStore)) else 4000  # type: ignore[attr-defined]
    with pytest.raises(OSError) as exc:
        os.setxattr(f, "user.large", bytes(large))
    assert exc.value.errno == errno.ENOSPC
    assert os.listxattr(f) == []


def test_rsync_x_twice_and_cp_a(any_mount: Mounted, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for rel, data in (("a", b"alpha"), ("sub/b", b"beta" * 1000)):
        (src / rel).write_bytes(data)
        os.setxattr(src / rel, "user.checksum", rel.encode())
    os.setxattr(src / "sub", "user.kind", b"directory")
    mnt = any_mount.path
    first = subprocess.run(["rsync", "-aX", f"{src}/", f"{mnt}/copy/"], capture_output=True,
                           text=True, check=False)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert attributes(mnt / "copy" / "a") == {"user.checksum": b"a"}
    assert attributes(mnt / "copy" / "sub") == {"user.kind": b"directory"}
    second = subprocess.run(["rsync", "-aXi", f"{src}/", f"{mnt}/copy/"], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert second.stdout == "", f"the second rsync changed: {second.stdout}"

    for dst in (mnt / "cp", tmp_path / "back"):  # onto the mount, and from it
        origin = src if dst.parent == mnt else mnt / "cp"
        done = subprocess.run(["cp", "-a", "--preserve=all", str(origin), str(dst)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert attributes(dst / "sub" / "b") == {"user.checksum": b"sub/b"}
        assert (dst / "sub" / "b").read_bytes() == b"beta" * 1000


def test_extended_attributes_can_be_turned_off(tmp_path: Path) -> None:
    """fuse.xattrs = false: what the mount did before it kept them (the kernel stops asking,
    and writes cost no security.capability round trip)."""
    store = LocalStore(tmp_path / "ufs")
    home = tmp_path / "home"
    home.mkdir()
    (home / "shoal.toml").write_text("[fuse]\nxattrs = false\n")
    m = Mounted(home, store.uri, tmp_path / "mnt", store.options)
    m.mount()
    try:
        f = m.path / "file"
        f.write_bytes(b"x")
        with pytest.raises(OSError) as exc:
            os.setxattr(f, "user.a", b"v")
        assert exc.value.errno == errno.EOPNOTSUPP
        assert f.read_bytes() == b"x"
    finally:
        m.teardown()


def test_as_another_user_the_modes_decide(shared_any_mount: Mounted) -> None:
    """Through an allow_other mount, user nobody sets attributes on its own file and reads
    those of a file it may read; a file it may not write refuses it (EACCES: the kernel's
    check, user.* attributes follow the mode bits), as does a sticky directory not its own
    (EPERM), and trusted.* ones need privilege (EPERM). The store holds nobody's."""
    m = shared_any_mount
    pub = m.path / "pub"
    theirs = pub / "roots"
    theirs.write_bytes(b"r")
    os.setxattr(theirs, "user.owner", b"root")
    (m.path / "closed").mkdir(mode=0o700)
    (m.path / "closed" / "inside").write_bytes(b"i")
    os.setxattr(m.path / "closed" / "inside", "user.hidden", b"h")
    code = (
        f"d, c = {str(pub)!r}, {str(m.path / 'closed')!r}\n"
        "open(d + '/mine', 'w').write('m')\n"
        "os.setxattr(d + '/mine', 'user.a', b'nobody')\n"
        "print(os.getxattr(d + '/mine', 'user.a').decode())\n"
        "print(os.getxattr(d + '/roots', 'user.owner').decode())\n"
        "attempt('set on roots', lambda: os.setxattr(d + '/roots', 'user.x', b'no'))\n"
        "attempt('remove on roots', lambda: os.removexattr(d + '/roots', 'user.owner'))\n"
        "attempt('set on sticky dir', lambda: os.setxattr(d, 'user.x', b'no'))\n"
        "attempt('trusted on mine', lambda: os.setxattr(d + '/mine', 'trusted.t', b'no'))\n"
        "attempt('get in closed', lambda: os.getxattr(c + '/inside', 'user.hidden'))\n"
        "attempt('list in closed', lambda: os.listxattr(c + '/inside'))\n"
    )
    assert nobody_says(code) == [
        "nobody",
        "root",
        "set on roots EACCES",
        "remove on roots EACCES",
        "set on sticky dir EPERM",
        "trusted on mine EPERM",
        "get in closed EACCES",
        "list in closed EACCES",
    ]
    assert attributes(theirs) == {"user.owner": b"root"}
    assert os.listxattr(pub) == []
    assert attributes(pub / "mine") == {"user.a": b"nobody"}
    store: Store = m.store  # type: ignore[attr-defined]
    assert store.xattrs("pub/mine") == {"user.a": b"nobody"}

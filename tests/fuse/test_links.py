"""Hard links through a real mount, over a local UFS and over S3: link counts, one name
removed or renamed at a time, content shared by every name, restarts, and the tools that use
them (tar, rsync -H, cp -a) compared with their source."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted
from tests.fuse.otheruser import NOBODY, nobody_says, store_root


def tree_of(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root`` as (type, permission bits, size, content digest), plus the
    groups of names that are one file (hard links), found by inode number."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                inodes.setdefault(st.st_ino, []).append(rel)
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), size, digest)
    groups = sorted(sorted(names) for names in inodes.values() if len(names) > 1)
    out["<hard links>"] = tuple(tuple(g) for g in groups)
    return out


def make_linked_tree(root: Path) -> None:
    """Files with hard links inside one directory and across directories, and a fifo."""
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "one").write_bytes(os.urandom(70_000))
    os.link(root / "a" / "one", root / "a" / "one-again")
    os.link(root / "a" / "one", root / "b" / "one-elsewhere")
    (root / "a" / "deep" / "two").write_bytes(b"two\n")
    os.link(root / "a" / "deep" / "two", root / "two")
    (root / "single").write_bytes(b"alone\n")
    os.mkfifo(root / "b" / "pipe", 0o640)


def test_link_counts_unlink_and_rename(any_mount: Mounted) -> None:
    mnt = any_mount.path
    (mnt / "d").mkdir()
    f, g = mnt / "f", mnt / "d" / "g"
    f.write_bytes(b"first content\n")
    os.link(f, g)
    assert os.stat(f).st_nlink == os.stat(g).st_nlink == 2
    assert os.stat(f).st_ino == os.stat(g).st_ino
    assert g.read_bytes() == b"first content\n"
    with open(g, "ab") as out:  # a write through one name is the file's, seen through both
        out.write(b"more\n")
    assert f.read_bytes() == b"first content\nmore\n"
    # EEXIST before EPERM: a directory linked onto a name that exists
    with pytest.raises(OSError) as caught:
        os.link(mnt / "d", f)
    assert caught.value.errno == errno.EEXIST
    with pytest.raises(OSError) as caught:
        os.link(mnt / "d", mnt / "d2")
    assert caught.value.errno == errno.EPERM
    with pytest.raises(FileExistsError):
        os.link(f, g)
    # A name renamed onto another name of the same file: nothing happens (POSIX)
    os.rename(g, f)
    assert f.exists() and g.exists() and os.stat(f).st_nlink == 2
    # Rename of one name moves only that name
    os.rename(g, mnt / "d" / "h")
    assert not g.exists() and os.stat(mnt / "d" / "h").st_nlink == 2
    # Rename over a linked name: the replaced name goes, its file keeps its other name
    os.link(f, mnt / "third")
    (mnt / "other").write_bytes(b"other\n")
    os.rename(mnt / "other", mnt / "third")
    assert (mnt / "third").read_bytes() == b"other\n"
    assert os.stat(f).st_nlink == 2 and os.stat(mnt / "third").st_nlink == 1
    # Unlink of one name keeps the others
    os.unlink(f)
    assert (mnt / "d" / "h").read_bytes() == b"first content\nmore\n"
    assert os.stat(mnt / "d" / "h").st_nlink == 1
    assert sorted(os.listdir(mnt)) == ["d", "third"]
    assert os.listdir(mnt / "d") == ["h"]


def test_the_store_holds_every_name(any_mount: Mounted) -> None:
    """A local store gets a real hard link; S3 an independent copy, rewritten with the file."""
    mnt = any_mount.path
    store = any_mount.store  # type: ignore[attr-defined]
    (mnt / "f").write_bytes(b"v1\n")
    os.link(mnt / "f", mnt / "g")
    (mnt / "f").write_bytes(b"version two\n")  # rewritten through the first name
    (mnt / "g").write_bytes(b"version three\n")  # and through the second
    assert (mnt / "f").read_bytes() == b"version three\n"
    any_mount.umount()
    assert store.get("f") == store.get("g") == b"version three\n"
    root = getattr(store, "root", None)
    if root is not None:  # a local store: one file under two names
        assert os.stat(root / "f").st_ino == os.stat(root / "g").st_ino
    any_mount.mount()
    assert (mnt / "g").read_bytes() == b"version three\n"
    assert os.stat(mnt / "f").st_nlink == 2


def test_a_renamed_other_name_is_renamed_in_the_store(any_mount: Mounted) -> None:
    """The store's copy under a file's other name goes with that name: once, a rename of it
    moved the copy onto the file's own name instead, and the new name never reached the store
    (nor, on a local store, did the old one leave)."""
    mnt = any_mount.path
    store = any_mount.store  # type: ignore[attr-defined]
    (mnt / "own").write_bytes(b"linked\n")
    os.link(mnt / "own", mnt / "other")
    os.link(mnt / "own", mnt / "third")
    (mnt / "replaced").write_bytes(b"replaced\n")
    os.rename(mnt / "other", mnt / "renamed")
    os.rename(mnt / "third", mnt / "replaced")  # over another file
    (mnt / "d").mkdir()
    os.unlink(mnt / "own")  # "renamed" takes over as the file's own name
    os.link(mnt / "renamed", mnt / "d" / "moved")
    os.rename(mnt / "d" / "moved", mnt / "d" / "moved-again")
    names = ["renamed", "replaced", "d/moved-again"]
    assert sorted(store.keys()) == sorted(["d/", *names])
    assert {store.get(name) for name in names} == {b"linked\n"}
    root = store_root(any_mount)
    if root is not None:  # a local store: one file under every name
        assert len({os.stat(root / name).st_ino for name in names}) == 1
    any_mount.umount()
    assert "clean" in shoal("fsck", home=any_mount.home).stdout
    any_mount.mount()
    assert [os.stat(mnt / name).st_nlink for name in names] == [3, 3, 3]
    assert (mnt / "replaced").read_bytes() == b"linked\n"


def test_a_renamed_directory_takes_the_other_names_in_it_along(any_mount: Mounted) -> None:
    """A directory holding hard links' other names (of files named outside it, and inside)
    renamed: the store holds every name at its new path and nothing at the old one. Once the
    old directory stayed in the store with a copy in it, and the next listing brought it back
    as a directory of its own."""
    mnt = any_mount.path
    store = any_mount.store  # type: ignore[attr-defined]
    (mnt / "d").mkdir()
    (mnt / "e" / "sub").mkdir(parents=True)
    (mnt / "d" / "outside").write_bytes(b"named outside\n")
    os.link(mnt / "d" / "outside", mnt / "e" / "sub" / "link")
    (mnt / "e" / "sub" / "inside").write_bytes(b"named inside\n")
    # Met before its own name in a walk of the directory (which records a move per file).
    os.link(mnt / "e" / "sub" / "inside", mnt / "e" / "again")
    os.link(mnt / "e" / "sub" / "inside", mnt / "d" / "out-link")
    os.rename(mnt / "e", mnt / "moved")
    content = {
        "d/outside": b"named outside\n",
        "moved/sub/link": b"named outside\n",
        "moved/sub/inside": b"named inside\n",
        "moved/again": b"named inside\n",
        "d/out-link": b"named inside\n",
    }
    assert sorted(store.keys()) == sorted(["d/", "moved/", "moved/sub/", *content])
    assert {key: store.get(key) for key in content} == content
    shoal("fs", "sync", "-R", "/", home=any_mount.home)
    assert sorted(os.listdir(mnt)) == ["d", "moved"]
    any_mount.umount()
    assert "clean" in shoal("fsck", home=any_mount.home).stdout
    any_mount.mount()
    assert {key: (mnt / key).read_bytes() for key in content} == content
    assert os.stat(mnt / "moved" / "again").st_nlink == 3


@pytest.mark.parametrize("stop", ["umount", "kill9"])
def test_links_survive_a_restart(any_mount: Mounted, stop: str) -> None:
    """Through the checkpoint written at unmount, and through replay after a kill -9."""
    mnt = any_mount.path
    (mnt / "x").mkdir()
    (mnt / "a").write_bytes(b"shared\n")
    os.link(mnt / "a", mnt / "x" / "b")
    os.link(mnt / "a", mnt / "x" / "c")
    os.unlink(mnt / "a")  # the inode's own name goes: another takes over
    (mnt / "p").write_bytes(b"p\n")
    os.link(mnt / "p", mnt / "q")
    if stop == "umount":
        any_mount.umount()
    else:
        any_mount.kill9()
        any_mount.teardown()
    any_mount.mount()
    assert not (mnt / "a").exists()
    b, c = os.stat(mnt / "x" / "b"), os.stat(mnt / "x" / "c")
    assert b.st_ino == c.st_ino and b.st_nlink == c.st_nlink == 2
    assert (mnt / "x" / "c").read_bytes() == b"shared\n"
    assert os.stat(mnt / "q").st_nlink == 2 and (mnt / "q").read_bytes() == b"p\n"
    os.unlink(mnt / "x" / "b")
    assert os.stat(mnt / "x" / "c").st_nlink == 1


def test_tar_extract_and_create_with_hard_links_and_fifos(
    any_mount: Mounted, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_linked_tree(src)
    archive = tmp_path / "in.tar"
    subprocess.run(["tar", "-C", str(src), "-cf", str(archive), "."], check=True)
    target = any_mount.path / "untarred"
    target.mkdir()
    subprocess.run(["tar", "-C", str(target), "-xpf", str(archive)], check=True)
    assert tree_of(target) == tree_of(src)
    # tar c of the mount stores the links as links again
    again = tmp_path / "again"
    again.mkdir()
    out = tmp_path / "out.tar"
    subprocess.run(["tar", "-C", str(target), "-cf", str(out), "."], check=True)
    listing = subprocess.run(
        ["tar", "-tvf", str(out)], check=True, capture_output=True, text=True
    ).stdout
    assert listing.count(" link to ") == 3, listing
    subprocess.run(["tar", "-C", str(again), "-xpf", str(out)], check=True)
    assert tree_of(again) == tree_of(src)


def test_rsync_keeps_hard_links_and_a_second_run_changes_nothing(
    any_mount: Mounted, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_linked_tree(src)
    dst = any_mount.path / "synced"
    cmd = ["rsync", "-aH", "--itemize-changes", f"{src}/", f"{dst}/"]
    subprocess.run(cmd, check=True, capture_output=True)
    assert tree_of(dst) == tree_of(src)
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "", second.stdout


def test_cp_a_keeps_hard_links(any_mount: Mounted, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_linked_tree(src)
    subprocess.run(["cp", "-a", str(src), str(any_mount.path / "copied")], check=True)
    assert tree_of(any_mount.path / "copied") == tree_of(src)
    back = tmp_path / "back"
    subprocess.run(["cp", "-a", str(any_mount.path / "copied"), str(back)], check=True)
    assert tree_of(back) == tree_of(src)


def test_a_name_unlinked_while_open_keeps_the_content_for_the_other(any_mount: Mounted) -> None:
    """Written through an open handle, one name unlinked before close: the file lives on under
    its other name with everything written (the write buffer is not dropped with the name)."""
    mnt = any_mount.path
    (mnt / "f").write_bytes(b"")
    os.link(mnt / "f", mnt / "g")
    with open(mnt / "f", "wb", buffering=0) as out:
        out.write(b"written before the unlink\n")
        os.unlink(mnt / "f")  # and nothing written after: the close has it to commit
    assert (mnt / "g").read_bytes() == b"written before the unlink\n"
    other = mnt / "h"
    other.write_bytes(b"")
    os.link(other, mnt / "h2")
    (mnt / "src").write_bytes(b"replacement\n")
    with open(other, "wb", buffering=0) as out:
        out.write(b"kept under h2\n")
        os.rename(mnt / "src", other)  # a rename over the open name
    assert (mnt / "h2").read_bytes() == b"kept under h2\n"
    assert other.read_bytes() == b"replacement\n"


def protected_hardlinks() -> bool:
    """Whether the kernel refuses a link to a file the caller may not read and write."""
    return Path("/proc/sys/fs/protected_hardlinks").read_text().strip() == "1"


def test_hard_links_as_another_user(shared_any_mount: Mounted) -> None:
    """Through an allow_other mount, user nobody links its own file, unlinks and renames one
    name, and (protected_hardlinks) may not link a file of root's it cannot read or write; the
    store holds every name nobody made (on S3, a copy)."""
    mnt = shared_any_mount.path
    (mnt / "pub" / "roots").write_bytes(b"secret\n")
    os.chmod(mnt / "pub" / "roots", 0o600)
    code = (
        f"d = {str(mnt / 'pub')!r}\n"
        "open(d + '/mine', 'w').write('mine')\n"
        "os.link(d + '/mine', d + '/mine2')\n"
        "os.link(d + '/mine', d + '/mine3')\n"
        "print(os.stat(d + '/mine2').st_nlink)\n"
        "os.unlink(d + '/mine')\n"
        "os.rename(d + '/mine3', d + '/renamed')\n"
        "print(open(d + '/mine2').read(), os.stat(d + '/renamed').st_nlink)\n"
        "attempt('link roots', lambda: os.link(d + '/roots', d + '/stolen'))\n"
    )
    refused = "EPERM" if protected_hardlinks() else "allowed"
    assert nobody_says(code) == ["3", "mine 2", f"link roots {refused}"]
    st = os.stat(mnt / "pub" / "mine2")
    assert (st.st_uid, st.st_ino) == (NOBODY, os.stat(mnt / "pub" / "renamed").st_ino)
    assert (mnt / "pub" / "stolen").exists() != protected_hardlinks()
    shared_any_mount.umount()
    store = shared_any_mount.store  # type: ignore[attr-defined]
    assert store.get("pub/mine2") == store.get("pub/renamed") == b"mine"
    assert "pub/mine" not in store.keys() and "pub/mine3" not in store.keys()
    root = store_root(shared_any_mount)
    if root is not None:  # a local store: one file of nobody's under two names
        one, two = os.stat(root / "pub" / "mine2"), os.stat(root / "pub" / "renamed")
        assert one.st_ino == two.st_ino and (one.st_uid, one.st_nlink) == (NOBODY, 2)

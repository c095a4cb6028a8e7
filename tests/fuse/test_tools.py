"""Ordinary tools on a real mount, over a local UFS and over S3: everything is compared byte
for byte with its source, and with the UFS after unmount."""

from __future__ import annotations

import filecmp
import os
import random
import sqlite3
import subprocess
from pathlib import Path

from tests.fuse.mounting import Mounted


def make_tree(root: Path, seed: int = 1) -> dict[str, bytes]:
    """A small dataset: nested class folders, awkward names, empty and multi-block files."""
    rng = random.Random(seed)
    files = {
        "README": b"a dataset\n",
        "empty": b"",
        "train/cls a/img 0001.jpg": rng.randbytes(110_000),
        "train/cls a/img 0002.jpg": rng.randbytes(4095),
        "train/clsé/ünï.bin": rng.randbytes(1),
        "shards/big-0000.tar": rng.randbytes(5 * 1024 * 1024 + 123),  # two 4 MiB blocks
        "deep/a/b/c/d/e/f.txt": b"deep\n",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "emptydir").mkdir()
    return files


def same_trees(a: Path, b: Path) -> None:
    out = subprocess.run(["diff", "-r", "--no-dereference", str(a), str(b)], capture_output=True)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()


def ufs_matches(m: Mounted, prefix: str, files: dict[str, bytes]) -> None:
    store = m.store  # type: ignore[attr-defined]
    for rel, data in files.items():
        assert store.get(f"{prefix}/{rel}") == data, rel


def test_cp_rsync_tar_find_du_mv_ln(any_mount: Mounted, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    mnt = any_mount.path
    subprocess.run(["cp", "-r", str(src), str(mnt / "cp")], check=True)
    same_trees(src, mnt / "cp")
    subprocess.run(["rsync", "-a", f"{src}/", f"{mnt}/rsync/"], check=True)
    same_trees(src, mnt / "rsync")
    for rel in files:  # rsync -a keeps modification times
        assert os.stat(src / rel).st_mtime_ns == os.stat(mnt / "rsync" / rel).st_mtime_ns
    # tar into the mount, and out of it again
    tar = subprocess.run(["tar", "-C", str(src), "-cf", "-", "."], check=True, capture_output=True)
    (mnt / "tar").mkdir()
    subprocess.run(["tar", "-C", str(mnt / "tar"), "-xf", "-"], input=tar.stdout, check=True)
    same_trees(src, mnt / "tar")
    out = tmp_path / "out"
    out.mkdir()
    back = subprocess.run(["tar", "-C", str(mnt / "tar"), "-cf", "-", "."], check=True,
                          capture_output=True)  # fmt: skip
    subprocess.run(["tar", "-C", str(out), "-xf", "-"], input=back.stdout, check=True)
    same_trees(src, out)
    found = subprocess.run(["find", str(mnt / "cp"), "-type", "f"], check=True,
                           capture_output=True, text=True).stdout.splitlines()  # fmt: skip
    assert sorted(os.path.relpath(p, mnt / "cp") for p in found) == sorted(files)
    du = subprocess.run(["du", "-sb", str(mnt / "cp")], check=True, capture_output=True, text=True)
    assert int(du.stdout.split()[0]) >= sum(len(d) for d in files.values())
    subprocess.run(["mv", str(mnt / "cp"), str(mnt / "moved")], check=True)
    assert not (mnt / "cp").exists()
    subprocess.run(["ln", "-s", "moved/train", str(mnt / "train-link")], check=True)
    assert os.readlink(mnt / "train-link") == "moved/train"
    assert (mnt / "train-link" / "cls a" / "img 0001.jpg").read_bytes() == files[
        "train/cls a/img 0001.jpg"
    ]
    same_trees(src, mnt / "moved")
    any_mount.umount()
    for prefix in ("moved", "rsync", "tar"):
        ufs_matches(any_mount, prefix, files)


def test_python_file_operations(any_mount: Mounted) -> None:
    mnt = any_mount.path
    rng = random.Random(2)
    model = bytearray(rng.randbytes(6 * 1024 * 1024))
    path = mnt / "data.bin"
    path.write_bytes(model)
    with open(path, "r+b") as f:
        for _ in range(50):  # random overwrites, some across the 4 MiB block boundary
            off = rng.randrange(0, len(model) + 1000)
            data = rng.randbytes(rng.randrange(1, 70_000))
            f.seek(off)
            f.write(data)
            if off > len(model):
                model.extend(b"\0" * (off - len(model)))
            model[off : off + len(data)] = data
            f.flush()
            assert os.fstat(f.fileno()).st_size == len(model)  # visible while writing
        f.seek(123_456)
        assert f.read(1000) == model[123_456:124_456]
        f.truncate(5_000_000)
        del model[5_000_000:]
        assert os.fstat(f.fileno()).st_size == 5_000_000  # an open file sees its truncate
    with open(path, "ab") as f:
        f.write(b"appended")
    model += b"appended"
    assert path.read_bytes() == model
    os.truncate(path, 7_000_000)  # grows: zeros, no old bytes come back
    model.extend(b"\0" * (7_000_000 - len(model)))
    assert path.read_bytes() == model
    with open(mnt / "synced", "wb") as f:
        f.write(b"durable")
        f.flush()
        os.fsync(f.fileno())
    any_mount.umount()
    store = any_mount.store  # type: ignore[attr-defined]
    assert store.get("data.bin") == model
    assert store.get("synced") == b"durable"


def test_sqlite_and_git(any_mount: Mounted) -> None:
    mnt = any_mount.path
    db = sqlite3.connect(mnt / "db.sqlite")
    db.execute("create table t (k integer primary key, v text)")
    for i in range(20):
        with db:
            db.executemany("insert into t (v) values (?)", [(f"row {i}-{j}",) for j in range(200)])
    with db:
        db.execute("update t set v = v || '!' where k % 7 = 0")
        db.execute("delete from t where k % 11 = 0")
    db.close()
    db = sqlite3.connect(mnt / "db.sqlite")
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    expected = sum(1 for k in range(1, 4001) if k % 11)
    assert db.execute("select count(*) from t").fetchone() == (expected,)
    db.close()

    repo = mnt / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    for i in range(3):
        (repo / f"f{i}.txt").write_text(f"version {i}\n" * 100)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"commit {i}"], check=True)
    log = subprocess.run([*git, "log", "--oneline"], check=True, capture_output=True, text=True)
    assert len(log.stdout.splitlines()) == 3
    subprocess.run([*git, "fsck", "--strict"], check=True, capture_output=True)
    copy = mnt.parent / "db-copy.sqlite"
    copy.write_bytes((mnt / "db.sqlite").read_bytes())
    any_mount.umount()
    store = any_mount.store  # type: ignore[attr-defined]
    assert store.get("db.sqlite") == copy.read_bytes()
    check = sqlite3.connect(copy)
    assert check.execute("pragma integrity_check").fetchone() == ("ok",)
    assert filecmp.cmp(copy, copy)

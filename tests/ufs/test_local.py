"""The connector contract on a local directory, plus what only a local root can get wrong."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ufs.contract import UnderFSContract
from ufs.base import UnderFS
from ufs.errors import UfsError, UfsInvalidPath, UfsNotFound
from ufs.local import LocalUnderFS
from ufs.uri import open_ufs


class TestLocalUnderFS(UnderFSContract):
    @pytest.fixture
    def ufs(self, tmp_path: Path) -> Iterator[UnderFS]:
        root = tmp_path / "root"
        root.mkdir()
        yield LocalUnderFS(str(root))


def test_symlinks_never_lead_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (root / "inside.txt").write_text("inside")
    os.symlink(secret, root / "escape")
    os.symlink(tmp_path, root / "escape-dir")
    os.symlink("inside.txt", root / "alias")  # stays inside: allowed
    ufs = LocalUnderFS(str(root))
    for path in ("escape", "escape-dir/secret.txt"):
        with pytest.raises(UfsInvalidPath):
            ufs.read(path, 0, 100)
        with pytest.raises(UfsInvalidPath):
            ufs.write(path, io.BytesIO(b"overwrite"))
    assert secret.read_text() == "outside"
    assert {e.name for e in ufs.list("")} == {"inside.txt", "alias"}
    assert ufs.read("alias", 0, 100) == b"inside"


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    ufs.write("f", io.BytesIO(b"old"))

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            raise OSError("source failed mid-way")

    with pytest.raises(UfsError, match="source failed mid-way"):
        ufs.write("f", Broken())  # type: ignore[arg-type]
    assert ufs.read("f", 0, 10) == b"old"
    assert [e.name for e in ufs.list("")] == ["f"]  # no temporary file left visible


def test_uris(tmp_path: Path) -> None:
    assert isinstance(open_ufs(str(tmp_path)), LocalUnderFS)
    assert open_ufs(f"file://{tmp_path}").stat("").is_dir
    with pytest.raises(UfsNotFound):
        open_ufs(str(tmp_path / "missing"))


def test_trees_deeper_than_path_max(tmp_path: Path) -> None:
    """No system call takes a path over 4096 bytes; the connector walks directory descriptors
    instead, and still never follows a symlink out of the root."""
    root = tmp_path / "root"
    root.mkdir()
    ufs = LocalUnderFS(str(root))
    deep = "/".join(["d" * 60] * 90)  # 5,490 bytes
    ufs.mkdir(deep)
    status = ufs.write(deep + "/leaf.bin", io.BytesIO(b"x" * 5000))
    assert status.size == 5000 and ufs.stat(deep + "/leaf.bin").size == 5000
    assert ufs.read(deep + "/leaf.bin", 4990, 100) == b"x" * 10
    assert [s.path.rsplit("/", 1)[1] for s in ufs.list(deep)] == ["leaf.bin"]
    ufs.write(deep + "/more/new.txt", io.BytesIO(b"parents made on the way"))
    ufs.rename(deep + "/leaf.bin", deep + "/more/moved.bin")
    assert ufs.read(deep + "/more/moved.bin", 0, 3) == b"xxx"
    fd = os.open(root, os.O_RDONLY)  # plant a symlink out of the root, deep down
    try:
        for part in deep.split("/"):
            inner = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.symlink(str(tmp_path), "escape", dir_fd=fd)
    finally:
        os.close(fd)
    (tmp_path / "secret").write_text("outside")
    with pytest.raises(UfsInvalidPath):
        ufs.read(deep + "/escape/secret", 0, 10)
    assert sorted(s.path.rsplit("/", 1)[1] for s in ufs.list(deep)) == ["more"]
    ufs.delete(deep + "/more/moved.bin")
    ufs.delete(deep + "/more/new.txt")
    ufs.rmdir(deep + "/more")
    with pytest.raises(UfsNotFound):
        ufs.stat(deep + "/more")

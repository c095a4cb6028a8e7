"""Staged writes of the local connector (ufs/staged.py): a temporary file of ours at the store's
root, written as the bytes come, landed as `write` lands its own."""

from __future__ import annotations

import os
from pathlib import Path

from ufs import tempfiles
from ufs.base import UfsAttrs
from ufs.local import LocalUnderFS


def test_staged_write_lands_like_a_write(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    staged = ufs.stage("a/b/new")
    assert staged is not None
    temp = Path(staged.temp)
    assert temp.parent == tmp_path and tempfiles.is_temp(temp.name)
    os.write(staged.fd, b"hello " * 1000)
    assert [s.name for s in ufs.list("")] == []  # a write in flight is never listed
    status = ufs.land(staged, "a/b/new", UfsAttrs(0o640, os.getuid(), os.getgid()))
    os.close(staged.fd)
    assert staged.landed and not temp.exists()
    assert (tmp_path / "a/b/new").read_bytes() == b"hello " * 1000
    assert status.size == 6000 and status.mode == 0o640
    assert status == ufs.stat("a/b/new")


def test_staged_write_lands_under_a_name_in_another_directory(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    (tmp_path / "old").mkdir()
    staged = ufs.stage("old/f")
    assert staged is not None
    os.write(staged.fd, b"moved")
    ufs.land(staged, "new/f")  # the file was renamed while it was written
    os.close(staged.fd)
    assert (tmp_path / "new/f").read_bytes() == b"moved"
    assert sorted(os.listdir(tmp_path)) == ["new", "old"] and os.listdir(tmp_path / "old") == []


def test_discarded_staged_write_leaves_nothing(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    staged = ufs.stage("f")
    assert staged is not None
    os.write(staged.fd, b"never landed")
    staged.discard()
    staged.discard()  # twice is harmless
    os.close(staged.fd)
    assert os.listdir(tmp_path) == []
    assert ufs.leftovers() == []


def test_directory_renamed_and_removed_while_a_file_in_it_is_staged(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    (tmp_path / "d").mkdir()
    staged = ufs.stage("d/f")
    assert staged is not None
    os.write(staged.fd, b"in a renamed directory")
    os.rename(tmp_path / "d", tmp_path / "e")  # the staged file holds no directory
    ufs.rmdir("e")
    ufs.land(staged, "g/f")
    os.close(staged.fd)
    assert (tmp_path / "g/f").read_bytes() == b"in a renamed directory"
    assert sorted(os.listdir(tmp_path)) == ["g"]


def test_staged_write_copied_when_its_temporary_file_is_gone(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    staged = ufs.stage("f")
    assert staged is not None
    os.write(staged.fd, b"x" * 3_000_000)
    os.unlink(staged.temp)  # removed by someone else: the descriptor still has the bytes
    ufs.land(staged, "e/f", UfsAttrs(0o600, os.getuid(), os.getgid()))
    os.close(staged.fd)
    assert (tmp_path / "e/f").read_bytes() == b"x" * 3_000_000
    assert (tmp_path / "e/f").stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["e"] and os.listdir(tmp_path / "e") == ["f"]

"""Staged writes of the local connector (ufs/staged.py): a temporary file of ours beside the
target, written as the bytes come, landed as `write` lands its own."""

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
    assert temp.parent == tmp_path / "a" / "b" and tempfiles.is_temp(temp.name)
    os.write(staged.fd, b"hello " * 1000)
    assert [s.name for s in ufs.list("a/b")] == []  # a write in flight is never listed
    status = ufs.land(staged, "a/b/new", UfsAttrs(0o640, os.getuid(), os.getgid()))
    os.close(staged.fd)
    assert staged.landed and not temp.exists()
    assert (tmp_path / "a/b/new").read_bytes() == b"hello " * 1000
    assert status.size == 6000 and status.mode == 0o640
    assert status == ufs.stat("a/b/new")


def test_staged_write_lands_under_a_name_in_another_directory(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    staged = ufs.stage("old/f")
    assert staged is not None
    os.write(staged.fd, b"moved")
    ufs.land(staged, "new/f")  # the file was renamed while it was written
    os.close(staged.fd)
    assert (tmp_path / "new/f").read_bytes() == b"moved"
    assert os.listdir(tmp_path / "old") == []


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

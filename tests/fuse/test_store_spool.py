"""A new file written THROUGH (or CACHE_THROUGH) a mount of a local store is spooled in the
store itself (engine/spools.py, ufs/staged.py): its bytes reach the store's disk once, as they
are written, and close or fsync only lands them. Checked through real mounts and a real kill -9.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.spools import BURST, BURST_GAP_S
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore
from ufs import tempfiles


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".shoal-tmp-*") if tempfiles.is_temp(p.name)]


def _written(root: Path) -> list[Path]:
    """The temporary files holding bytes: not the empty spare made ahead for the next new
    file (engine/spools.py ``SpareSpools``), which only a stop removes."""
    return [p for p in _temps(root) if p.stat().st_size]


@pytest.mark.parametrize("write_type", ["THROUGH", "CACHE_THROUGH"])
def test_new_file_is_written_into_the_store_while_open(tmp_path: Path, write_type: str) -> None:
    ufs = tmp_path / "ufs"
    with mounted(LocalStore(ufs), tmp_path, f"write_type={write_type}") as m:
        (m.path / "d").mkdir()
        data = os.urandom(3 << 20)
        fd = os.open(m.path / "d" / "ckpt", os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
            # Before close: the bytes are on the store's disk already, under a temporary
            # name of ours at the store's root, and the name is not there yet.
            (temp,) = _written(ufs)
            assert temp.parent == ufs and temp.read_bytes() == data
            assert not (ufs / "d" / "ckpt").exists()
            assert "ckpt" in os.listdir(m.path / "d")  # the temporary name is never listed
        finally:
            os.close(fd)
        # At close (THROUGH's promise) the store has the file, with its mode; nothing is left
        # but the spare made ahead, which the stop removes.
        assert (ufs / "d" / "ckpt").read_bytes() == data
        assert (ufs / "d" / "ckpt").stat().st_mode & 0o777 == 0o640
        assert _written(ufs) == []
        assert (m.path / "d" / "ckpt").read_bytes() == data
        m.umount()
        assert _temps(ufs) == []


def test_writes_after_fsync_go_on_top_of_the_landed_content(tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    with mounted(LocalStore(ufs), tmp_path, "write_type=THROUGH") as m:
        f = m.path / "log"
        first = os.urandom(200_000)
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, first)
            os.fsync(fd)
            assert (ufs / "log").read_bytes() == first  # fsync landed it
            os.pwrite(fd, b"MIDDLE", 1000)  # over the landed bytes: not into the store's file
            assert (ufs / "log").read_bytes() == first
            os.pwrite(fd, b"tail", len(first))
            assert os.pread(fd, 10, len(first) - 6) == first[-6:] + b"tail"
        finally:
            os.close(fd)
        expect = first[:1000] + b"MIDDLE" + first[1006:] + b"tail"
        assert (ufs / "log").read_bytes() == expect
        assert f.read_bytes() == expect
        assert _written(ufs) == []


def test_directory_renamed_while_a_new_file_in_it_is_written(tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    with mounted(LocalStore(ufs), tmp_path, "write_type=THROUGH") as m:
        (m.path / "d").mkdir()
        data = os.urandom(1 << 20)
        fd = os.open(m.path / "d" / "f", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.rename(m.path / "d", m.path / "e")  # the store's directory moves
            os.write(fd, b"more")
        finally:
            os.close(fd)
        assert (ufs / "e" / "f").read_bytes() == data + b"more"
        assert os.listdir(ufs / "e") == ["f"] and not (ufs / "d").exists()
        assert (m.path / "e" / "f").read_bytes() == data + b"more"


def test_file_unlinked_before_close_leaves_no_temporary_file(tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    with mounted(LocalStore(ufs), tmp_path, "write_type=THROUGH") as m:
        f = m.path / "scratch"
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"x" * 5000)
            os.unlink(f)
            assert os.pread(fd, 10, 0) == b"x" * 10
        finally:
            os.close(fd)
        m.umount()  # the kernel's RELEASE follows close without being waited for; this waits
        assert _temps(ufs) == [] and os.listdir(ufs) == []


def test_directory_of_a_file_unlinked_while_written_can_be_removed(tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    with mounted(LocalStore(ufs), tmp_path, "write_type=THROUGH") as m:
        (m.path / "d").mkdir()
        fd = os.open(m.path / "d" / "f", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"y" * 5000)
            os.unlink(m.path / "d" / "f")
            os.rmdir(m.path / "d")  # empty in the store too: the spool is not in it
            assert not (ufs / "d").exists()
        finally:
            os.close(fd)


def test_kill9_mid_write_leaves_a_temporary_file_fsck_lists_and_a_start_sweeps(
    tmp_path: Path,
) -> None:
    ufs = tmp_path / "ufs"
    with mounted(LocalStore(ufs), tmp_path, "write_type=THROUGH") as m:
        (m.path / "kept").write_bytes(b"acknowledged")
        fd = os.open(m.path / "partial", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, os.urandom(1 << 20))
            m.kill9()
        finally:
            with contextlib.suppress(OSError):  # the connection is gone
                os.close(fd)
        # The half-written file, never under the file's name (beside it, maybe, the empty
        # spare made ahead for the next new file: a dead writer's too, swept the same way).
        (temp,) = _written(ufs)
        assert not (ufs / "partial").exists()
        out = shoal("fsck", home=m.home, expect=1).stdout
        assert "FAIL  stores" in out and temp.name in out
        m.mount()
        assert _temps(ufs) == []  # the start removed it: its writer is provably gone
        assert (m.path / "kept").read_bytes() == b"acknowledged"
        partial = m.path / "partial"  # created, never closed: empty, if its name was durable
        assert not partial.exists() or partial.read_bytes() == b""
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout.splitlines()[-1]


def _until(what: Callable[[], list[Path]]) -> list[Path]:
    """``what()`` once it is not empty (the spare is made in a thread of its own, after the
    create that took the last one); the test fails if it stays empty for a minute."""
    for _ in range(6000):
        if found := what():
            return found
        time.sleep(0.01)
    raise AssertionError("no spare spool was made")


@pytest.mark.parametrize("write_type", ["THROUGH", "CACHE_THROUGH"])
def test_create_takes_a_spool_made_ahead_in_the_store(tmp_path: Path, write_type: str) -> None:
    """In a burst of creates (`tar x`), the create of a new file takes the spool made ahead
    for it: no file is made in the store on the create's path (a thread's hop and a file
    creation less per file); the stop removes the one left. An odd new file gets none."""
    ufs = tmp_path / "ufs"
    with mounted(LocalStore(ufs), tmp_path, f"write_type={write_type}") as m:
        (m.path / "odd").write_bytes(b"1")
        time.sleep(BURST_GAP_S * 2)  # that one alone: no spare is made for it
        assert _temps(ufs) == []
        burst = [f"f{i}" for i in range(BURST)]
        for name in burst:
            (m.path / name).write_bytes(name.encode())
        (spare,) = _until(lambda: [p for p in _temps(ufs) if not p.stat().st_size])
        fd = os.open(m.path / "second", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"second's bytes")
            assert spare.read_bytes() == b"second's bytes"  # made before the create asked
        finally:
            os.close(fd)
        assert (ufs / "second").read_bytes() == b"second's bytes"
        assert not spare.exists()  # landed under its name
        _until(lambda: _temps(ufs))  # the next one's
        m.umount()
        assert _temps(ufs) == []
        assert sorted(os.listdir(ufs)) == sorted(["odd", "second", *burst])

"""Block files kept open between hits: never a closed (or reused) descriptor under a reader,
never a stale file behind a cached descriptor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.cache.openblocks import OpenBlockFiles


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_replaced_or_deleted_file_is_never_read_through_an_old_descriptor(
    tmp_path: Path,
) -> None:
    files: OpenBlockFiles[str] = OpenBlockFiles(lambda k: str(tmp_path / k))
    (tmp_path / "a").write_bytes(b"old")
    with files.opened("a") as (fd, st):
        assert os.pread(fd, 10, 0) == b"old" and st.st_size == 3
    # Replaced behind the cache's back (rename over it): the kept descriptor is not used.
    (tmp_path / "new").write_bytes(b"newer")
    os.rename(tmp_path / "new", tmp_path / "a")
    with files.opened("a") as (fd, st):
        assert os.pread(fd, 10, 0) == b"newer" and st.st_size == 5
    os.unlink(tmp_path / "a")
    with pytest.raises(FileNotFoundError), files.opened("a"):
        pass
    files.close()


def test_a_descriptor_is_closed_only_when_nobody_reads_through_it(tmp_path: Path) -> None:
    files: OpenBlockFiles[str] = OpenBlockFiles(lambda k: str(tmp_path / k), limit=2)
    for name in "abcd":
        (tmp_path / name).write_bytes(name.encode() * 4)
    before = open_fds()
    with files.opened("a") as (fd_a, _):
        files.forget("a")  # its file is going: closed when this reader is done, not now
        for name in "bcd":  # beyond the limit: unused ones are closed, "a" is in use
            with files.opened(name):
                pass
        assert os.pread(fd_a, 4, 0) == b"aaaa"
    assert open_fds() - before == 2  # the limit; "a" closed by its last reader
    files.close()
    assert open_fds() == before


def test_a_vanished_file_leaves_no_descriptor_behind(tmp_path: Path) -> None:
    files: OpenBlockFiles[str] = OpenBlockFiles(lambda k: str(tmp_path / k))
    (tmp_path / "a").write_bytes(b"a")
    before = open_fds()
    with files.opened("a"):
        pass
    os.unlink(tmp_path / "a")  # the kept descriptor now points at an unlinked file
    with pytest.raises(FileNotFoundError), files.opened("a"):
        pass
    assert open_fds() == before  # the stale one was closed, nothing was left open
    files.close()


def test_the_entry_just_opened_is_never_trimmed_while_all_others_are_held(
    tmp_path: Path,
) -> None:
    files: OpenBlockFiles[str] = OpenBlockFiles(lambda k: str(tmp_path / k), limit=2)
    for name in "abc":
        (tmp_path / name).write_bytes(name.encode() * 4)
    before = open_fds()
    held = [files.take(name)[0] for name in "ab"]  # the table full, every entry in use
    # Another open right after would take a descriptor number the table just freed.
    entry, st = files.take("c")
    (tmp_path / "other").write_bytes(b"zzzz")
    other = os.open(tmp_path / "other", os.O_RDONLY)
    try:
        assert os.pread(entry.fd, 4, 0) == b"cccc" and st.st_size == 4
    finally:
        os.close(other)
    files.give_back(entry)
    for kept in held:
        files.give_back(kept)
    assert open_fds() - before == 2  # back within the limit once readers are done
    files.close()
    assert open_fds() == before

"""The contract every connector passes (after fsspec's abstract suite): a connector opts in with
a small subclass that provides the ``ufs`` fixture (an empty store) and runs everything here."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import pytest

from ufs.base import UfsAttrs, UfsStatus, UnderFS
from ufs.errors import (
    UfsError,
    UfsInvalidName,
    UfsInvalidPath,
    UfsIsADirectory,
    UfsNameTooLong,
    UfsNotADirectory,
    UfsNotEmpty,
    UfsNotFound,
)

MiB = 1 << 20
AWKWARD = [
    "with space", "ünïcødé-日本語", "100%", "%20literal", "a+b", "hash#tag", "q?x", "amp&eq=",
    "quote'", "tilde~", "semi;colon", "comma,", "(paren)", "dollar$", "at@",
]  # fmt: skip


def put(ufs: UnderFS, path: str, data: bytes) -> None:
    ufs.write(path, io.BytesIO(data))


def read_all(ufs: UnderFS, path: str) -> bytes:
    return ufs.read(path, 0, ufs.stat(path).size)


def known(ufs: UnderFS, listed: UfsStatus) -> UfsStatus:
    """A listed entry with its owner, mode and mtime: as listed where the listing read them,
    else (``attrs_known`` False: an S3 listing) the stat's, of the very same copy."""
    if listed.attrs_known:
        return listed
    assert (listed.mode, listed.uid, listed.gid) == (None, None, None)
    full = ufs.stat(listed.path)
    assert (full.size, full.fingerprint, full.is_dir) == (
        listed.size, listed.fingerprint, listed.is_dir,
    )  # fmt: skip
    return full


class PatternStream(io.RawIOBase):
    """``size`` deterministic bytes, generated as they are read: a large upload that is never
    whole in this process's memory."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.left = size
        self.block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.digest.update(self.block[:n])
        self.left -= n
        return n


class _Failing(io.RawIOBase):
    """A source that breaks after its first bytes."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.sent:
            raise OSError("the source broke mid-way")
        self.sent = True
        buffer[:5] = b"start"
        return 5


class UnderFSContract:
    @pytest.fixture
    def ufs(self) -> Iterator[UnderFS]:
        raise NotImplementedError("a connector's test class provides an empty store")

    # -- files -------------------------------------------------------------------------------

    def test_write_stat_read(self, ufs: UnderFS) -> None:
        status = ufs.write("a/b/file.bin", io.BytesIO(b"hello world"))
        assert (status.path, status.is_dir, status.size) == ("a/b/file.bin", False, 11)
        assert status.fingerprint
        assert ufs.stat("a/b/file.bin") == status
        assert ufs.stat("/a/b/file.bin/") == status  # slashes normalised
        assert read_all(ufs, "a/b/file.bin") == b"hello world"
        assert ufs.stat("a").is_dir and ufs.stat("a/b").is_dir and ufs.stat("").is_dir

    def test_read_ranges(self, ufs: UnderFS) -> None:
        data = os.urandom(10_000)
        put(ufs, "r", data)
        assert ufs.read("r", 100, 50) == data[100:150]
        assert ufs.read("r", 9_990, 100) == data[9_990:]  # short at the end
        assert ufs.read("r", 10_000, 10) == b""  # at the end
        assert ufs.read("r", 20_000, 10) == b""  # past it
        assert ufs.read("r", 5, 0) == b""

    def test_a_reads_status_is_the_one_stat_gives(self, ufs: UnderFS) -> None:
        when = 1_700_000_000_000_000_000
        ufs.write("st/f", io.BytesIO(b"x" * 5000), UfsAttrs(0o640, 1000, 1001, when))
        seen: list[UfsStatus] = []
        assert b"".join(ufs.read_stream("st/f", 100, 50, seen.append)) == b"x" * 50
        assert seen in ([], [ufs.stat("st/f")])  # where a connector tells, it tells the truth

    def test_read_stream_yields_the_bytes_of_read(self, ufs: UnderFS) -> None:
        data = os.urandom(700_000)  # several S3 chunks
        put(ufs, "s", data)
        chunks = list(ufs.read_stream("s", 1000, 600_000))
        assert b"".join(chunks) == data[1000:601_000]
        assert all(chunks)  # never an empty chunk
        assert b"".join(ufs.read_stream("s", 699_000, 5000)) == data[699_000:]
        assert list(ufs.read_stream("s", 700_000, 10)) == []  # at the end
        assert list(ufs.read_stream("s", 5, 0)) == []
        with pytest.raises(UfsNotFound):
            list(ufs.read_stream("missing", 0, 10))

    def test_overwrite_changes_content_and_fingerprint(self, ufs: UnderFS) -> None:
        first = ufs.write("f", io.BytesIO(b"A" * 100))
        second = ufs.write("f", io.BytesIO(b"B" * 100))  # same size, new content
        assert second.fingerprint != first.fingerprint
        assert read_all(ufs, "f") == b"B" * 100

    def test_empty_file(self, ufs: UnderFS) -> None:
        status = ufs.write("empty", io.BytesIO(b""))
        assert status.size == 0 and not status.is_dir
        assert ufs.read("empty", 0, 10) == b""

    def test_missing_things_are_not_found(self, ufs: UnderFS) -> None:
        with pytest.raises(UfsNotFound):
            ufs.stat("nope")
        with pytest.raises(UfsNotFound):
            list(ufs.list("nope"))
        with pytest.raises(UfsNotFound):
            ufs.read("nope", 0, 10)
        with pytest.raises(UfsNotFound):
            ufs.delete("nope")

    def test_delete(self, ufs: UnderFS) -> None:
        put(ufs, "d/x", b"1")
        ufs.delete("d/x")
        with pytest.raises(UfsNotFound):
            ufs.stat("d/x")
        with pytest.raises(UfsIsADirectory):
            ufs.delete("d")

    def test_rename_replaces_the_target(self, ufs: UnderFS) -> None:
        put(ufs, "src", b"source bytes")
        put(ufs, "dir/dst", b"old target")
        ufs.rename("src", "dir/dst")
        assert read_all(ufs, "dir/dst") == b"source bytes"
        with pytest.raises(UfsNotFound):
            ufs.stat("src")

    def test_link_gives_a_second_name_the_same_content(self, ufs: UnderFS) -> None:
        put(ufs, "src", b"linked bytes")
        put(ufs, "d/dst", b"old target")
        status = ufs.link("src", "d/dst")  # over a file there, parents made
        assert status.size == 12 and status.fingerprint == ufs.stat("src").fingerprint
        assert read_all(ufs, "d/dst") == read_all(ufs, "src") == b"linked bytes"
        ufs.delete("src")
        assert read_all(ufs, "d/dst") == b"linked bytes"
        with pytest.raises(UfsNotFound):
            ufs.link("src", "again")
        assert sorted(e.name for e in ufs.list("")) == ["d"]  # nothing left of a temporary

    def test_linking_a_name_already_linked_leaves_nothing_behind(self, ufs: UnderFS) -> None:
        put(ufs, "d/src", b"linked bytes")
        ufs.link("d/src", "d/dst")
        ufs.link("d/src", "d/dst")  # the same file under both names already: nothing to do
        assert read_all(ufs, "d/dst") == b"linked bytes"
        ufs.delete("d/src")
        ufs.delete("d/dst")
        ufs.rmdir("d")  # empty: no temporary name left in it
        assert list(ufs.list("")) == []

    def test_mknod_makes_a_special_file(self, ufs: UnderFS) -> None:
        status = ufs.mknod("sp/fifo", stat.S_IFIFO | 0o640, 0)
        assert status.special == stat.S_IFIFO and not status.is_dir and status.size == 0
        (listed,) = list(ufs.list("sp"))
        assert listed.name == "fifo" and listed.special == stat.S_IFIFO
        put(ufs, "sp/empty", b"")
        assert ufs.stat("sp/empty").special == 0  # an empty regular file stays one

    def test_a_special_files_attributes_keep_its_type(self, ufs: UnderFS) -> None:
        ufs.mknod("sp/sock", stat.S_IFSOCK | 0o755, 0)
        status = ufs.set_attrs("sp/sock", UfsAttrs(0o700, 1000, 1001))
        assert (status.special, status.mode, status.uid, status.gid) == (
            stat.S_IFSOCK, 0o700, 1000, 1001,
        )  # fmt: skip
        (listed,) = list(ufs.list("sp"))
        assert listed.special == stat.S_IFSOCK and listed.mode == 0o700

    def test_writes_that_ended_leave_nothing_behind(self, ufs: UnderFS) -> None:
        put(ufs, "w/f", b"first")
        put(ufs, "w/f", b"second")
        with pytest.raises(UfsError, match="the source broke mid-way"):
            ufs.write("w/g", _Failing())  # type: ignore[arg-type]
        assert [e.name for e in ufs.list("w")] == ["f"]
        assert ufs.leftovers() == [] and ufs.clean_leftovers() == 0
        assert read_all(ufs, "w/f") == b"second"

    # -- owners, modes, times ----------------------------------------------------------------

    def test_a_write_and_a_mkdir_give_their_attributes(self, ufs: UnderFS) -> None:
        when = 1_700_000_000_123_456_789
        status = ufs.write("own/f", io.BytesIO(b"data"), UfsAttrs(0o640, 1000, 1001, when))
        assert (status.mode, status.uid, status.gid, status.mtime_ns) == (0o640, 1000, 1001, when)
        ufs.mkdir("own/private", UfsAttrs(0o700, 1002, 1003))
        listed = {e.name: known(ufs, e) for e in ufs.list("own")}
        assert listed["f"] == ufs.stat("own/f") == status
        assert (listed["f"].mode, listed["f"].uid, listed["f"].gid) == (0o640, 1000, 1001)
        made = ufs.stat("own/private")
        assert (made.mode, made.uid, made.gid) == (0o700, 1002, 1003)
        assert (listed["private"].mode, listed["private"].uid) == (0o700, 1002)
        # An overwrite gives what it is asked to, not what the old file had.
        again = ufs.write("own/f", io.BytesIO(b"new"), UfsAttrs(0o600, 1000, 1001))
        assert (again.mode, again.uid, again.gid) == (0o600, 1000, 1001)

    def test_set_attrs_changes_them_and_not_the_content(self, ufs: UnderFS) -> None:
        put(ufs, "sa/f", b"content")
        ufs.mkdir("sa/d")
        when = 1_600_000_000_000_000_000
        after = ufs.set_attrs("sa/f", UfsAttrs(mode=0o4751, uid=1234, gid=4321, mtime_ns=when))
        assert (after.mode, after.uid, after.gid, after.mtime_ns) == (0o4751, 1234, 4321, when)
        assert ufs.stat("sa/f") == after and read_all(ufs, "sa/f") == b"content"
        only_mode = ufs.set_attrs("sa/f", UfsAttrs(mode=0o600))
        assert (only_mode.mode, only_mode.uid, only_mode.gid) == (0o600, 1234, 4321)
        d = ufs.set_attrs("sa/d", UfsAttrs(mode=0o1777, uid=7, gid=8))
        assert d.is_dir and (d.mode, d.uid, d.gid) == (0o1777, 7, 8)
        assert {e.name: known(ufs, e).mode for e in ufs.list("sa")} == {"f": 0o600, "d": 0o1777}
        with pytest.raises(UfsNotFound):
            ufs.set_attrs("sa/missing", UfsAttrs(mode=0o600))

    def test_mknod_gives_its_attributes(self, ufs: UnderFS) -> None:
        old = os.umask(0o077)  # the daemon's own umask must not decide
        try:
            made = ufs.mknod("sp/f", stat.S_IFIFO | 0o666, 0, UfsAttrs(0o664, 1000, 1001))
        finally:
            os.umask(old)
        assert (made.special, made.mode, made.uid, made.gid) == (stat.S_IFIFO, 0o664, 1000, 1001)
        (listed,) = list(ufs.list("sp"))
        assert (listed.special, listed.mode, listed.uid, listed.gid) == (stat.S_IFIFO, 0o664,
                                                                        1000, 1001)  # fmt: skip

    def test_set_attrs_of_a_special_file_keeps_its_type(self, ufs: UnderFS) -> None:
        ufs.mknod("sp/fifo", stat.S_IFIFO | 0o644, 0)
        after = ufs.set_attrs("sp/fifo", UfsAttrs(mode=0o600, uid=5, gid=6))
        assert (after.special, after.mode, after.uid, after.gid) == (stat.S_IFIFO, 0o600, 5, 6)
        (listed,) = list(ufs.list("sp"))
        assert (listed.special, listed.mode) == (stat.S_IFIFO, 0o600)

    def test_mkdir_of_an_existing_directory_keeps_what_it_has(self, ufs: UnderFS) -> None:
        when = 1_500_000_000_000_000_000
        ufs.mkdir("keep/d", UfsAttrs(0o750, 7, 8))
        ufs.set_attrs("keep/d", UfsAttrs(mtime_ns=when))
        ufs.set_xattrs("keep/d", {"user.tag": b"kept"})
        before = ufs.stat("keep/d")
        ufs.mkdir("keep/d")  # as a rename into it does, to make sure it is there
        ufs.mkdir("keep/d", UfsAttrs(0o700, 1, 1))
        after = ufs.stat("keep/d")
        assert (after.mode, after.uid, after.gid, after.mtime_ns) == (0o750, 7, 8, when)
        assert after == before and ufs.get_xattrs("keep/d") == {"user.tag": b"kept"}

    # -- directories -------------------------------------------------------------------------

    def test_list_direct_children(self, ufs: UnderFS) -> None:
        put(ufs, "top/f1", b"1")
        put(ufs, "top/f2", b"22")
        put(ufs, "top/sub/deep/f3", b"333")  # sub exists only through a deeper file
        ufs.mkdir("top/made")
        entries = {e.name: e for e in ufs.list("top")}
        assert sorted(entries) == ["f1", "f2", "made", "sub"]
        assert entries["f2"].size == 2 and not entries["f2"].is_dir
        assert entries["sub"].is_dir and entries["made"].is_dir
        assert entries["sub"].path == "top/sub"
        assert [e.name for e in ufs.list("top/made")] == []

    def test_list_the_root(self, ufs: UnderFS) -> None:
        put(ufs, "top-file", b"1")
        put(ufs, "top-dir/inner", b"2")
        assert {(e.name, e.is_dir) for e in ufs.list("")} == {
            ("top-file", False),
            ("top-dir", True),
        }
        assert {e.path for e in ufs.list("/")} == {"top-file", "top-dir"}

    def test_list_of_a_file_is_not_a_directory(self, ufs: UnderFS) -> None:
        put(ufs, "file", b"x")
        with pytest.raises(UfsNotADirectory):
            list(ufs.list("file"))

    def test_mkdir_rmdir(self, ufs: UnderFS) -> None:
        ufs.mkdir("m/n/o")
        ufs.mkdir("m/n/o")  # exists: fine
        assert ufs.stat("m/n/o").is_dir
        put(ufs, "m/n/file", b"x")
        with pytest.raises(UfsNotEmpty):
            ufs.rmdir("m/n")
        ufs.rmdir("m/n/o")
        with pytest.raises(UfsNotFound):
            ufs.stat("m/n/o")

    def test_extended_attributes_are_replaced_kept_by_rename_and_read_back(
        self, ufs: UnderFS
    ) -> None:
        put(ufs, "d/f", b"data")
        ufs.mkdir("d/sub")
        ufs.check_xattrs("d/f", {"user.a": b"1"})
        ufs.set_xattrs("d/f", {"user.a": b"1", "user.b": bytes(range(256))})
        ufs.set_xattrs("d/f", {"user.b": b"2"})  # replaces: user.a goes
        ufs.set_xattrs("d/sub", {"user.dir": b"x"})
        ufs.rename("d/f", "d/g")
        assert ufs.get_xattrs("d/g") == {"user.b": b"2"}
        assert ufs.get_xattrs("d/sub") == {"user.dir": b"x"}
        assert read_all(ufs, "d/g") == b"data"
        ufs.set_xattrs("d/g", {})
        assert ufs.get_xattrs("d/g") == {}
        with pytest.raises(UfsNotFound):
            ufs.set_xattrs("d/missing", {"user.a": b"1"})

    def test_awkward_names(self, ufs: UnderFS) -> None:
        for i, name in enumerate(AWKWARD):
            put(ufs, f"odd dir/{name}", name.encode() * (i + 1))
        listed = {e.name for e in ufs.list("odd dir")}
        assert listed == set(AWKWARD)
        for i, name in enumerate(AWKWARD):
            assert read_all(ufs, f"odd dir/{name}") == name.encode() * (i + 1)
            assert ufs.stat(f"odd dir/{name}").size == len(name.encode()) * (i + 1)

    def test_names_follow_the_connectors_rules(self, ufs: UnderFS) -> None:
        """What ``rules`` (ufs/base.py NameRules) accepts is stored; what it refuses is refused
        with its error, before anything is written: the engine relies on both."""
        rules = ufs.rules
        latin = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not UTF-8
        with pytest.raises(UfsNotFound):  # looked up, it is simply not there
            ufs.stat(latin)
        if rules.utf8:
            with pytest.raises(UfsInvalidName):
                put(ufs, f"{latin}/f", b"x")
            with pytest.raises(UfsInvalidName):
                ufs.mkdir(latin)
        else:
            put(ufs, f"{latin}/f", b"latin")
            assert [e.name for e in ufs.list("")] == [latin]
            assert read_all(ufs, f"{latin}/f") == b"latin"
            ufs.delete(f"{latin}/f")
            ufs.rmdir(latin)
        longest = rules.name_max
        if rules.key_max is not None:
            longest = min(longest, rules.key_max - rules.key_base)
        rules.check("n" * longest)
        put(ufs, "n" * longest, b"at the limit")
        with pytest.raises(UfsNameTooLong):
            rules.check("m" * (longest + 1))
        with pytest.raises(UfsNameTooLong):
            put(ufs, "m" * (longest + 1), b"over")
        assert [e.name for e in ufs.list("")] == ["n" * longest]

    def test_invalid_paths(self, ufs: UnderFS) -> None:
        for bad in ("../x", "a/../../x", "a/./b", "nul\0byte"):
            with pytest.raises(UfsInvalidPath):
                ufs.stat(bad)

    # -- scale -------------------------------------------------------------------------------

    def populate(self, ufs: UnderFS, paths: list[str]) -> None:
        """Creates many small files; a connector may do it faster its own way."""
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda p: put(ufs, p, p.encode()), paths))

    def test_ten_thousand_entries_list_as_a_stream(self, ufs: UnderFS) -> None:
        names = [f"obj-{i:05d}" for i in range(10_000)]
        self.populate(ufs, [f"many/{n}" for n in names])
        stream = ufs.list("many")
        assert isinstance(stream, Iterator)  # not a list built in memory
        first = next(stream)
        seen = {first.name} | {e.name for e in stream}
        assert seen == set(names)

    def test_100_mib_read_by_ranges(self, ufs: UnderFS) -> None:
        source = PatternStream(100 * MiB, seed=100)
        ufs.write("big/100mib", source)  # type: ignore[arg-type]
        expected = source.digest.hexdigest()
        ranges = [(off, 7 * MiB) for off in range(0, 100 * MiB, 7 * MiB)]
        with ThreadPoolExecutor(4) as pool:
            parts = list(pool.map(lambda r: ufs.read("big/100mib", *r), ranges))
        assert sum(len(p) for p in parts) == 100 * MiB
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        assert digest.hexdigest() == expected

    def test_64_mib_write_from_a_stream(self, ufs: UnderFS) -> None:
        source: BinaryIO = PatternStream(64 * MiB, seed=64)  # type: ignore[assignment]
        status = ufs.write("big/64mib", source)
        assert status.size == 64 * MiB
        digest = hashlib.sha256()
        for off in range(0, 64 * MiB, 16 * MiB):
            digest.update(ufs.read("big/64mib", off, 16 * MiB))
        assert digest.hexdigest() == source.digest.hexdigest()  # type: ignore[attr-defined]

"""The kernel's page cache of a file is kept across opens while its content is unchanged, and
dropped when it changes (a write through another handle, a UFS change found by sync): seen in
the bytes read and in the daemon's READ requests, counted by its metrics."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.bench.s3server import free_port
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted, mounted
from tests.ufs.stores import LocalStore


class Metered:
    def __init__(self, m: Mounted, ufs: Path, port: int) -> None:
        self.m, self.ufs, self.port = m, ufs, port

    def requests(self, op: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read()
        for line in text.decode().splitlines():
            if line.startswith(f'shoal_fuse_requests_total{{op="{op}"}} '):
                return float(line.rpartition(" ")[2])
        return 0.0


@pytest.fixture
def metered(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Metered]:
    """A mount over a local UFS with its metrics served; ``ro`` if the test is marked so by
    its name (``..._read_only_...``). The UFS holds data.bin (300 KB) and ten small files."""
    store = LocalStore(tmp_path / "ufs")
    (store.root / "data.bin").write_bytes(b"A" * 300_000)
    for i in range(10):
        (store.root / f"small-{i}").write_bytes(os.urandom(110_000))
    port = free_port()
    extra = ["ro"] if "read_only" in request.node.name else []
    with mounted(store, tmp_path, f"metrics.port={port}", *extra) as m:
        yield Metered(m, store.root, port)


def test_reopen_of_unchanged_file_reads_nothing_from_the_daemon(metered: Metered) -> None:
    f = metered.m.path / "data.bin"
    assert f.read_bytes() == b"A" * 300_000
    reads = metered.requests("read")
    for _ in range(3):  # from the first reopen on
        assert f.read_bytes() == b"A" * 300_000
    assert metered.requests("read") == reads


def test_write_through_another_handle_is_read_anew(metered: Metered) -> None:
    f = metered.m.path / "data.bin"
    with open(f, "rb") as reader:
        assert reader.read() == b"A" * 300_000  # its pages cached
        with open(f, "r+b") as writer:
            writer.write(b"B" * 1000)
    expected = b"B" * 1000 + b"A" * 299_000
    reads = metered.requests("read")
    assert f.read_bytes() == expected
    assert metered.requests("read") > reads, "the changed file was served from stale pages"
    reads = metered.requests("read")
    assert f.read_bytes() == expected  # unchanged since: kept again
    assert metered.requests("read") == reads


def test_ufs_change_found_by_sync_is_read_anew_on_a_read_only_mount(metered: Metered) -> None:
    f = metered.m.path / "data.bin"
    assert f.read_bytes() == b"A" * 300_000
    assert f.read_bytes() == b"A" * 300_000
    reads = metered.requests("read")
    ufs_file = metered.ufs / "data.bin"
    ufs_file.write_bytes(b"C" * 300_000)  # the same size: only the content tells
    st = ufs_file.stat()
    os.utime(ufs_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert f.read_bytes() == b"A" * 300_000  # not synced yet: the kernel's pages still serve
    shoal("fs", "sync", "/", home=metered.m.home)
    assert f.read_bytes() == b"C" * 300_000
    assert metered.requests("read") > reads
    reads = metered.requests("read")
    assert f.read_bytes() == b"C" * 300_000
    assert metered.requests("read") == reads


def test_warm_pass_on_a_read_only_mount_costs_only_open_and_release(metered: Metered) -> None:
    """A training epoch after the first: the kernel answers names, attributes and pages, so
    only OPEN and RELEASE reach the daemon (a writable kernel mount marks a file's access time
    stale at every READ, and its next open costs a GETATTR)."""
    files = [metered.m.path / f"small-{i}" for i in range(10)]
    first = [p.read_bytes() for p in files]
    assert first == [(metered.ufs / p.name).read_bytes() for p in files]
    before = {op: metered.requests(op) for op in ("lookup", "getattr", "read", "open")}
    assert [p.read_bytes() for p in files] == first
    after = {op: metered.requests(op) for op in before}
    assert after["open"] - before["open"] == len(files)
    assert {op: after[op] - before[op] for op in ("lookup", "getattr", "read")} == {
        "lookup": 0, "getattr": 0, "read": 0,
    }  # fmt: skip


def test_a_reader_beside_a_write_only_writer_reads_each_write_from_the_daemon(
    metered: Metered,
) -> None:
    """A write-only writer alone on its file bypasses the page cache (direct_io), so a reader
    opened while it writes does too: each read asks the daemon, and none is served from a page
    the writer's later bytes went around."""
    f = metered.m.path / "data.bin"
    assert f.read_bytes() == b"A" * 300_000  # pages cached before the writer opens
    writer = os.open(f, os.O_WRONLY)
    try:
        os.pwrite(writer, b"B" * 4096, 0)
        with open(f, "rb", buffering=0) as reader:
            assert reader.read(8192) == b"B" * 4096 + b"A" * 4096
            os.pwrite(writer, b"C" * 4096, 4096)
            reads = metered.requests("read")
            assert os.pread(reader.fileno(), 8192, 0) == b"B" * 4096 + b"C" * 4096
            assert metered.requests("read") > reads, "a re-read came from the page cache"
    finally:
        os.close(writer)
    assert f.read_bytes() == b"B" * 4096 + b"C" * 4096 + b"A" * (300_000 - 8192)


def test_a_file_rewritten_in_place_by_a_write_only_handle_is_not_read_from_stale_pages(
    metered: Metered,
) -> None:
    f = metered.m.path / "data.bin"
    assert f.read_bytes() == b"A" * 300_000
    assert f.read_bytes() == b"A" * 300_000  # kept: served from the page cache
    fd = os.open(f, os.O_WRONLY)  # no O_TRUNC: the old pages past the write are still right
    try:
        assert os.pwrite(fd, b"D" * 10_000, 100_000) == 10_000
    finally:
        os.close(fd)
    expected = b"A" * 100_000 + b"D" * 10_000 + b"A" * 190_000
    with open(f, "rb") as reader:
        assert reader.read() == expected
    assert (metered.ufs / "data.bin").read_bytes() == expected

"""Which handles bypass the kernel's page cache (direct_io): a write-only handle opened when
every other open handle of its file does (none, most often); any other handle goes through the
page cache as before (fuse/operations.py ``_open_writer``), and a direct handle's write drops
the pages such handles may read (tests/fuse/test_page_cache.py, through a real mount).

The frontend's handlers are driven here as the kernel's requests would drive them, over a real
engine and store."""

from __future__ import annotations

import io
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyfuse3
import trio

from fuse.operations import ShoalOperations
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore

ROOT = pyfuse3.ROOT_INODE


Requests = Callable[[ShoalOperations, int], Awaitable[None]]


def _drive(tmp_path: Path, open_engine: OpenEngine, requests: Requests) -> None:
    """``requests`` run over a mount of a local store holding /f (300 KB)."""
    store = LocalStore(tmp_path / "ufs")
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {"write_type": "THROUGH"})
    ino = engine.fs.write_file("/f", io.BytesIO(os.urandom(300_000))).id
    (tmp_path / "spool").mkdir()
    ops = ShoalOperations(engine, engine.config, str(tmp_path / "spool"))
    try:
        trio.run(requests, ops, ino)
    finally:
        ops.closer.finish()


async def _open(ops: ShoalOperations, ino: int, flags: int) -> pyfuse3.FileInfo:
    return await ops.open(ino, flags, None)  # type: ignore[arg-type]  # open asks no caller


async def _close(ops: ShoalOperations, *handles: int) -> None:
    for fh in handles:
        await ops.flush(fh)
        await ops.release(fh)


def test_a_lone_write_only_handle_bypasses_the_page_cache_and_drops_its_pages(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    async def requests(ops: ShoalOperations, ino: int) -> None:
        info = await _open(ops, ino, os.O_WRONLY)
        # Pages cached by readers closed before it would be stale beside its writes.
        assert info.direct_io and not info.keep_cache
        await _close(ops, info.fh)

    _drive(tmp_path, open_engine, requests)


def test_beside_a_direct_writer_only_write_only_handles_bypass_the_page_cache(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    async def requests(ops: ShoalOperations, ino: int) -> None:
        writer = await _open(ops, ino, os.O_WRONLY)
        second = await _open(ops, ino, os.O_WRONLY)
        reader = await _open(ops, ino, os.O_RDONLY)
        both = await _open(ops, ino, os.O_RDWR)
        # A reader or a read-write handle may be mapped shared: never direct_io.
        assert (writer.direct_io, second.direct_io) == (True, True)
        assert (reader.direct_io, both.direct_io) == (False, False)
        assert not reader.keep_cache  # the file is being written: its pages are dropped
        third = await _open(ops, ino, os.O_WRONLY)
        assert not third.direct_io  # the reader's pages must see its bytes
        await _close(ops, writer.fh, second.fh, reader.fh, both.fh, third.fh)
        assert ops.buffers.get(ino) is None or ops.buffers[ino].direct_handles == 0

    _drive(tmp_path, open_engine, requests)


def test_a_write_only_handle_beside_an_open_one_writes_through_the_page_cache(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    async def requests(ops: ShoalOperations, ino: int) -> None:
        reader = await _open(ops, ino, os.O_RDONLY)
        writer = await _open(ops, ino, os.O_WRONLY)
        # The reader's pages stay coherent only if the writer's bytes go through them.
        assert not reader.direct_io and not writer.direct_io
        await _close(ops, writer.fh, reader.fh)
        rdwr = await _open(ops, ino, os.O_RDWR)
        assert not rdwr.direct_io  # it may be mapped shared
        await _close(ops, rdwr.fh)

    _drive(tmp_path, open_engine, requests)


def test_a_new_file_created_write_only_bypasses_the_page_cache(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    async def requests(ops: ShoalOperations, ino: int) -> None:
        del ino
        for flags, direct in ((os.O_WRONLY, True), (os.O_RDWR, False)):
            name = f"new-{flags}".encode()
            info, _ = await ops.create(ROOT, name, 0o100644, flags, _Ctx())  # type: ignore[arg-type]
            assert info.direct_io is direct
            await ops.write(info.fh, 0, b"x" * 5000)
            await _close(ops, info.fh)

    _drive(tmp_path, open_engine, requests)


class _Ctx:
    """A request's context as pyfuse3 gives it: the caller (root) and its umask."""

    uid = 0
    gid = 0
    pid = os.getpid()
    umask = 0o022

"""A write buffer is retired, and closed by the closer thread (fuse/writebuffer.py), only once
no handle writes through it: an open with O_TRUNC that waits for the buffer (a reader holds its
lock while it copies old content in from the store) is one of its writers already, and the last
other writer's release meanwhile must not have it closed under that open.

The frontend's handlers are driven here as the kernel's requests would drive them, over a real
engine and store, with the buffer's own lock held to force the interleaving."""

from __future__ import annotations

import io
import os
from pathlib import Path

import trio
import trio.testing

from fuse.operations import ShoalOperations
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore

OLD = os.urandom(300_000)


def test_an_o_trunc_open_waiting_for_a_reader_keeps_its_buffer_past_the_last_writers_close(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {"write_type": "THROUGH"})
    ino = engine.fs.write_file("/f", io.BytesIO(OLD)).id
    (tmp_path / "spool").mkdir()
    ops = ShoalOperations(engine, engine.config, str(tmp_path / "spool"))
    ctx = None  # open, write, flush and release do not ask who calls

    async def requests() -> None:
        writer = (await ops.open(ino, os.O_WRONLY, ctx)).fh  # type: ignore[arg-type]
        buffer = ops.buffers[ino]
        opened: list[int] = []

        async def open_truncating() -> None:
            info = await ops.open(ino, os.O_WRONLY | os.O_TRUNC, ctx)  # type: ignore[arg-type]
            opened.append(info.fh)

        async with trio.open_nursery() as nursery:
            buffer.lock.acquire()  # a reader copying old content in holds it
            try:
                nursery.start_soon(open_truncating)
                await trio.testing.wait_all_tasks_blocked()  # its truncate waits for the lock
                await ops.flush(writer)
                await ops.release(writer)  # the last other writer goes meanwhile
                # Still the file's buffer, not handed to the closer to be closed under the open.
                assert ops.buffers.get(ino) is buffer
            finally:
                buffer.lock.release()  # the reader is done
        (fh,) = opened
        assert await ops.write(fh, 0, b"new content") == 11  # through the buffer it got
        await ops.flush(fh)
        await ops.release(fh)

    try:
        trio.run(requests)
    finally:
        ops.closer.finish()
    assert engine.fs.read("/f", 0, 1 << 20) == b"new content"
    assert store.get("f") == b"new content"

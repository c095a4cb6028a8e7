"""A store spool discarded while its upload's parts are in flight (the file unlinked while
open, or its commit failed): the writer's close must not close the spool's descriptor under a
part thread. Against moto's server over HTTP through the fault proxy, a part's PUT held."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server, s3_client
from engine.spools import StoreSpool
from engine.state import Mount
from fuse.writebuffer import WriteBuffer
from tests.ufs.stores import CREDS, new_bucket
from ufs.s3 import S3Options, S3UnderFS

PART = 5 << 20


def _until(done: Callable[[], bool], what: str) -> None:
    """Waits for work handed to the upload's threads; not a measure of anything."""
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _is_spool(fd: int, spool: os.stat_result) -> bool:
    """Descriptor ``fd`` is still open on the spool's file (not closed, nor reused)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (spool.st_dev, spool.st_ino)


def test_discarded_spool_stays_open_until_its_part_threads_are_done(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = new_bucket(s3_server)
    opts = S3Options(
        endpoint=proxy.endpoint, path_style=True, region="us-east-1", multipart_chunk=PART
    )
    ufs = S3UnderFS(bucket, "ds", opts, CREDS)
    held = Fault("delay", 1, seconds=120, method="PUT", query="partNumber=1")
    proxy.add(held)
    staged = ufs.stage("ckpt", str(tmp_path))
    assert staged is not None
    mount = Mount(1, f"s3://{bucket}/ds", {}, False, None, 0)
    buffer = WriteBuffer(
        str(tmp_path), 2, 0, 1 << 20, lambda _o, _n: b"", StoreSpool(staged, mount)
    )
    fd, spool = buffer.fd, os.fstat(buffer.fd)
    buffer.write(0, os.urandom(PART + 1))  # a whole part: its thread sends it
    _until(lambda: any("partNumber=1" in path for _m, path in proxy.requests), "part 1 sent")
    buffer.close()  # the file will not land: the upload is aborted in the background
    # Part 1's thread is still in its part: the spool it reads from is still open.
    assert _is_spool(fd, spool)
    held.release.set()
    raw = s3_client(s3_server.endpoint)
    _until(lambda: not raw.list_multipart_uploads(Bucket=bucket).get("Uploads"), "aborted")
    _until(lambda: not _is_spool(fd, spool), "the spool closed once the part was done")
    ufs.close()

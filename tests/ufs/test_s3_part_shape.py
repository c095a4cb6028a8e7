"""How a streamed S3 upload (ufs/s3parts.py) cuts and sends its parts, against moto's server
over HTTP: boto3's own part size and concurrency by default (what `shoal bench write` measures
it against), parts read from the spool as they are sent rather than held whole in memory,
parts that grow so S3's 10,000 hold a large file, and the range body botocore reads."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server, s3_client
from tests.ufs.stores import CREDS, new_bucket
from ufs.s3 import S3Options, S3UnderFS
from ufs.s3parts import StreamedUpload
from ufs.spoolrange import SpoolRange, SpoolShrank

MIB = 1 << 20


def _s3(endpoint: str, bucket: str, **options: object) -> S3UnderFS:
    opts = S3Options(endpoint=endpoint, path_style=True, region="us-east-1", **options)  # type: ignore[arg-type]
    return S3UnderFS(bucket, "ds", opts, CREDS)


def _write(staged: StreamedUpload, data: bytes) -> None:
    """As the mount's write buffer writes: pwrite to the spool, then report the range."""
    for off in range(0, len(data), MIB):
        piece = data[off : off + MIB]
        os.pwrite(staged.fd, piece, off)
        staged.wrote(off, off + len(piece))


def test_s3_streamed_parts_default_to_boto3_transfer_settings() -> None:
    # The bench's baseline is boto3's upload_file with its defaults: 16 MiB parts 4 at a time
    # kept a store bound by its CPU waiting where 8 MiB parts 10 at a time did not.
    boto3_defaults = TransferConfig()
    assert S3Options().multipart_chunk == boto3_defaults.multipart_chunksize
    assert S3Options().upload_concurrency == boto3_defaults.max_concurrency


def test_s3_streamed_part_is_never_read_whole_into_memory(
    s3_server: S3Server, tmp_path: Path
) -> None:
    part = 16 * MIB
    ufs = _s3(s3_server.endpoint, new_bucket(s3_server), multipart_chunk=part)
    staged = ufs.stage("big", str(tmp_path))
    assert isinstance(staged, StreamedUpload)
    data = os.urandom(2 * part + 3 * MIB)
    tracemalloc.start()  # every thread's allocations: the parts' senders included
    try:
        _write(staged, data)
        ufs.land(staged, "big")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ufs.read("big", 0, len(data)) == data
    # botocore reads a body in 1 MiB chunks, a few parts at once (~6 MiB seen); a part read
    # whole is 16 MiB at once (35 MiB seen).
    assert peak < part, f"{peak / MIB:.1f} MiB held at once"
    os.close(staged.fd)
    ufs.close()


def test_s3_streamed_parts_grow_to_hold_a_large_file(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    part = 5 * MIB
    ufs = _s3(proxy.endpoint, new_bucket(s3_server))
    fd = os.open(str(tmp_path), os.O_TMPFILE | os.O_RDWR, 0o600)
    staged = StreamedUpload(fd, ufs.client, ufs.bucket, "ds/grown", part, 4, ufs.slots, 2)
    data = os.urandom(part + part + 2 * part + 3 * MIB)
    _write(staged, data)
    ufs.land(staged, "grown")
    assert ufs.read("grown", 0, len(data)) == data
    puts = [p for m, p in proxy.requests if m == "PUT" and "partNumber=" in p]
    assert len(puts) == 4  # 5, 5 and 10 MiB, then the 3 MiB tail
    head = s3_client(s3_server.endpoint).head_object(
        Bucket=ufs.bucket, Key="ds/grown", PartNumber=3
    )
    assert head["ContentLength"] == 2 * part
    os.close(fd)
    ufs.close()


def test_s3_streamed_part_retried_sends_its_own_bytes_again(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    # botocore rewinds a body to 0 before a retry: the range must rewind to the part's start
    # (moto checks no payload hash, so bytes from elsewhere would be stored as they came).
    part = 5 * MIB
    ufs = _s3(proxy.endpoint, new_bucket(s3_server), multipart_chunk=part, max_attempts=3)
    staged = ufs.stage("retried", str(tmp_path))
    assert isinstance(staged, StreamedUpload)
    proxy.add(Fault("status", 1, status=500, method="PUT", query="partNumber=2"))
    data = os.urandom(3 * part + MIB)
    _write(staged, data)
    ufs.land(staged, "retried")
    assert ufs.read("retried", 0, len(data)) == data
    puts = [p for m, p in proxy.requests if m == "PUT"]
    assert len(puts) == 5 and all("partNumber=" in p for p in puts)  # 4 parts, 1 retry
    os.close(staged.fd)
    ufs.close()


def test_spool_range_reads_rewinds_and_refuses_a_shrunk_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    path.write_bytes(bytes(range(256)) * 4)
    fd = os.open(path, os.O_RDWR)
    try:
        body = SpoolRange(fd, 100, 50)
        assert len(body) == 50 and not hasattr(body, "len")
        assert body.read(20) == (bytes(range(256)) * 4)[100:120] and body.tell() == 20
        assert body.read() == (bytes(range(256)) * 4)[120:150] and body.read() == b""
        assert body.seek(0) == 0 and body.read(5) == bytes(range(100, 105))
        assert body.seek(0, os.SEEK_END) == 50
        with pytest.raises(ValueError):
            body.seek(-51, os.SEEK_END)
        os.ftruncate(fd, 110)
        body.seek(0)
        assert body.read(10) == bytes(range(100, 110))
        with pytest.raises(SpoolShrank):
            body.read(10)
    finally:
        os.close(fd)

"""The S3 connector's upload of a file while it is written (ufs/s3parts.py), against moto's
server over HTTP through the fault proxy, which counts the requests: parts leave as they fill,
the engine's ``prepare`` runs before the store sees any of them, a failed part falls back to a
whole upload, and the sweep of dead writers' uploads spares the live ones."""

from __future__ import annotations

import base64
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server, s3_client
from tests.ufs.stores import CREDS, new_bucket
from ufs.base import UfsAttrs
from ufs.s3 import S3Options, S3UnderFS
from ufs.s3parts import StreamedUpload, part_checksum

PART = 5 << 20
MIB = 1 << 20


def _connector(proxy: FaultProxy, bucket: str, **options: object) -> S3UnderFS:
    settings: dict[str, object] = {"region": "us-east-1", "multipart_chunk": PART}
    settings.update(options)
    opts = S3Options(endpoint=proxy.endpoint, path_style=True, **settings)  # type: ignore[arg-type]
    return S3UnderFS(bucket, "ds", opts, CREDS)


def _raw(s3_server: S3Server) -> Any:
    return s3_client(s3_server.endpoint)


def _part_puts(proxy: FaultProxy) -> int:
    return sum(1 for method, path in proxy.requests if method == "PUT" and "partNumber=" in path)


def _until(done: Callable[[], bool], what: str) -> None:
    """Waits for work handed to the upload's threads; not a measure of anything."""
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _write(staged: StreamedUpload, data: bytes, at: int = 0) -> None:
    """As the mount's write buffer writes: pwrite to the spool, then report the range."""
    for off in range(0, len(data), MIB):
        piece = data[off : off + MIB]
        os.pwrite(staged.fd, piece, at + off)
        staged.wrote(at + off, at + off + len(piece))


def test_s3_stage_sends_parts_as_they_fill_after_prepare(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    ufs = _connector(proxy, new_bucket(s3_server))
    staged = ufs.stage("a/ckpt", str(tmp_path))
    assert isinstance(staged, StreamedUpload)
    seen_before_prepare: list[int] = []

    def prepare() -> UfsAttrs:
        seen_before_prepare.append(len(proxy.requests))  # what the store saw before it
        return UfsAttrs(0o600, 7, 8)

    staged.prepare = prepare
    data = os.urandom(2 * PART + 3 * MIB)
    proxy.clear()
    _write(staged, data)
    _until(lambda: _part_puts(proxy) == 2, "2 parts sent before land")
    assert seen_before_prepare == [0]
    # No object yet: an upload in progress is nothing a reader or a listing sees.
    assert _raw(s3_server).list_objects_v2(Bucket=ufs.bucket).get("KeyCount", 0) == 0
    status = ufs.land(staged, "a/ckpt", UfsAttrs(0o600, 7, 8))
    assert _part_puts(proxy) == 3  # the tail: the only part land sent
    assert status.size == len(data) and ufs.read("a/ckpt", 0, len(data)) == data
    assert (ufs.stat("a/ckpt").mode or 0) & 0o7777 == 0o600
    assert _raw(s3_server).list_multipart_uploads(Bucket=ufs.bucket).get("Uploads", []) == []
    os.close(staged.fd)
    ufs.close()


def test_s3_failed_part_falls_back_to_a_whole_upload(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    ufs = _connector(proxy, new_bucket(s3_server), max_attempts=1)
    staged = ufs.stage("f", str(tmp_path))
    assert isinstance(staged, StreamedUpload)
    proxy.add(Fault("status", -1, status=500, method="PUT", query="partNumber=2"))
    data = os.urandom(3 * PART)
    _write(staged, data)
    _until(lambda: _part_puts(proxy) >= 2, "parts 1 and 2 tried")
    status = ufs.land(staged, "f")
    assert status.size == len(data) and ufs.read("f", 0, len(data)) == data
    assert _raw(s3_server).list_multipart_uploads(Bucket=ufs.bucket).get("Uploads", []) == []
    os.close(staged.fd)
    ufs.close()


def test_s3_sweep_aborts_dead_uploads_and_spares_live_ones(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = new_bucket(s3_server)
    raw = _raw(s3_server)
    dead = raw.create_multipart_upload(Bucket=bucket, Key="ds/dead")["UploadId"]
    outside = raw.create_multipart_upload(Bucket=bucket, Key="other/x")["UploadId"]
    ufs = _connector(proxy, bucket)
    staged = ufs.stage("live", str(tmp_path))
    assert isinstance(staged, StreamedUpload)
    data = os.urandom(PART + MIB)
    _write(staged, data)
    _until(lambda: _part_puts(proxy) == 1, "the live upload's first part sent")
    (listed,) = ufs.leftovers()
    assert listed.startswith("ds/dead ")
    assert ufs.clean_leftovers() == 1
    left = raw.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert sorted(u["UploadId"] for u in left) == sorted([staged.upload_id, outside])
    assert dead not in [u["UploadId"] for u in left]
    ufs.land(staged, "live")
    assert ufs.read("live", 0, len(data)) == data
    os.close(staged.fd)
    ufs.close()


def test_upload_shape_defaults_are_boto3s_transfer_defaults() -> None:
    # The mount's write is measured against boto3's managed upload of the same bytes
    # (`shoal bench write`): with 16 MiB parts, 4 in flight, the same streamed upload to moto
    # ran at ~0.7x boto3's own (docs/benchmarks.md). Its part size and parts in flight are
    # boto3's, whatever boto3's defaults become.
    from boto3.s3.transfer import TransferConfig

    defaults, boto3 = S3Options(), TransferConfig()
    assert defaults.multipart_chunk == boto3.multipart_chunksize
    # (an attribute boto3's __init__ sets; its stubs leave it out)
    assert defaults.upload_concurrency == getattr(boto3, "max_concurrency")  # noqa: B009


def test_a_parts_crc32_is_given_to_botocore_as_zlib_computes_it() -> None:
    """Given (ISA-L's, a tenth of zlib's CPU), botocore sends it instead of computing its own;
    the store checks it against the part (moto does: a wrong one fails every upload test)."""
    body = os.urandom(3 * MIB + 17)
    (value,) = part_checksum(body, {"ChecksumAlgorithm": "CRC32"}).values()
    assert base64.b64decode(value) == zlib.crc32(body).to_bytes(4, "big")
    assert part_checksum(body, {}) == {}  # the upload declared none: none is sent

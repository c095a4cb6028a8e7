"""The connector contract against Google Cloud Storage as gcp-storage-emulator serves it over
real HTTP on 127.0.0.1, plus what only GCS has: marker and implicit directories, resumable
uploads, the generation, a missing bucket, no credentials in the repr."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pytest

from cli.bench.faultproxy import FaultProxy
from cli.bench.gcsserver import GCSServer
from tests.ufs.contract import MiB, PatternStream, UnderFSContract
from ufs.base import UnderFS
from ufs.errors import UfsBucketMissing, UfsError, UfsNotFound
from ufs.gcs import GCSUnderFS
from ufs.gcsoptions import GCSOptions
from ufs.uri import open_ufs


def gcs_connector(server: GCSServer, bucket: str, prefix: str = "", **options: Any) -> GCSUnderFS:
    return GCSUnderFS(bucket, prefix, GCSOptions(endpoint=server.endpoint, **options))


class TestGCSUnderFS(UnderFSContract):
    @pytest.fixture
    def ufs(self, gcs_server: GCSServer) -> Iterator[UnderFS]:
        # Under a prefix, so objects outside it (another mount's) must stay invisible.
        bucket = gcs_server.create_bucket()
        outside = gcs_connector(gcs_server, bucket)
        outside.write("elsewhere/x", io.BytesIO(b"x"))
        outside.close()
        ufs = gcs_connector(gcs_server, bucket, "data/set", resumable_threshold=8 * MiB,
                            resumable_chunk=8 * MiB)  # fmt: skip
        yield ufs
        ufs.close()


def test_gcs_marker_and_implicit_directories(gcs_server: GCSServer) -> None:
    bucket = gcs_server.create_bucket()
    ufs = gcs_connector(gcs_server, bucket)
    raw = ufs.bucket
    raw.blob("marker/").upload_from_string(b"")  # an empty directory, as the console makes
    raw.blob("implicit/deeper/file").upload_from_string(b"abc")  # no markers at all
    raw.blob("both/").upload_from_string(b"")
    raw.blob("both/child").upload_from_string(b"c")
    assert {(e.name, e.is_dir) for e in ufs.list("")} == {
        ("marker", True), ("implicit", True), ("both", True),
    }  # fmt: skip
    assert ufs.stat("implicit").is_dir and ufs.stat("implicit/deeper").is_dir
    assert list(ufs.list("marker")) == []
    assert [e.name for e in ufs.list("implicit/deeper")] == ["file"]
    assert [e.name for e in ufs.list("both")] == ["child"]
    ufs.rmdir("marker")
    with pytest.raises(UfsNotFound):
        ufs.stat("marker")
    ufs.close()


def test_gcs_large_write_is_resumable_and_small_is_one_request(
    gcs_server: GCSServer, gcs_proxy: FaultProxy
) -> None:
    bucket = gcs_server.create_bucket()
    ufs = GCSUnderFS(bucket, "", GCSOptions(endpoint=gcs_proxy.endpoint, resumable_chunk=MiB,
                                            resumable_threshold=MiB))  # fmt: skip
    ufs.write("small", io.BytesIO(b"x" * 1000))
    uploads = [path for method, path in gcs_proxy.requests if "/upload/" in path]
    assert len(uploads) == 1 and "uploadType=multipart" in uploads[0]
    gcs_proxy.clear()
    source = PatternStream(3 * MiB + 5)
    status = ufs.write("big", source)  # type: ignore[arg-type]
    assert status.size == 3 * MiB + 5
    chunks = [path for method, path in gcs_proxy.requests if "upload_id=" in path]
    assert len(chunks) == 4  # three whole chunks, then the last 5 bytes
    assert hashlib.sha256(ufs.read("big", 0, 4 * MiB)).hexdigest() == source.digest.hexdigest()
    ufs.close()


def test_gcs_uri_options_and_errors(gcs_server: GCSServer) -> None:
    bucket = gcs_server.create_bucket()
    ufs = open_ufs(f"gs://{bucket}/some%20prefix", {"endpoint": gcs_server.endpoint})
    assert isinstance(ufs, GCSUnderFS) and ufs.prefix == "some prefix"
    ufs.close()
    with pytest.raises(UfsBucketMissing, match="does not exist"):
        open_ufs("gs://no-such-bucket-xyz", {"endpoint": gcs_server.endpoint})
    with pytest.raises(UfsError, match="unknown GCS mount option 'endpoint_url'"):
        open_ufs(f"gs://{bucket}", {"endpoint_url": gcs_server.endpoint})
    with pytest.raises(UfsError, match="multiple of 262144"):
        open_ufs(f"gs://{bucket}", {"endpoint": gcs_server.endpoint, "resumable_chunk": "1000"})

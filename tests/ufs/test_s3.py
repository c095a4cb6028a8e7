"""The connector contract against S3 served by moto over real HTTP on 127.0.0.1, plus what only
an object store has: marker and implicit directories, streaming pages, multipart, bad buckets."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dateutil.parser
import pytest

from cli.bench.s3server import SECRET_KEY, S3Server, s3_client
from tests.ufs.contract import MiB, PatternStream, UnderFSContract, known
from tests.ufs.stores import CREDS, new_bucket
from ufs.base import UfsAttrs, UfsStatus, UnderFS
from ufs.errors import UfsNotFound
from ufs.s3 import S3Options, S3UnderFS
from ufs.uri import open_ufs


def connector(server: S3Server, bucket: str, prefix: str = "", **options: Any) -> S3UnderFS:
    opts = S3Options(endpoint=server.endpoint, region="us-east-1", path_style=True, **options)
    return S3UnderFS(bucket, prefix, opts, CREDS)


class TestS3UnderFS(UnderFSContract):
    @pytest.fixture
    def ufs(self, s3_server: S3Server) -> Iterator[UnderFS]:
        # Under a prefix, so keys outside it (another mount's) must stay invisible.
        bucket = new_bucket(s3_server)
        s3_client(s3_server.endpoint).put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")
        ufs = connector(s3_server, bucket, "data/set", multipart_threshold=8 * MiB)
        yield ufs
        ufs.close()

    def populate(self, ufs: UnderFS, paths: list[str]) -> None:
        assert isinstance(ufs, S3UnderFS)
        client = ufs.client
        with ThreadPoolExecutor(32) as pool:
            list(
                pool.map(
                    lambda p: client.put_object(Bucket=ufs.bucket, Key=ufs._key(p), Body=b"x"),
                    paths,
                )
            )


def test_marker_and_implicit_directories(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    raw = s3_client(s3_server.endpoint)
    raw.put_object(Bucket=bucket, Key="marker/", Body=b"")  # an empty directory, S3-style
    raw.put_object(Bucket=bucket, Key="implicit/deeper/file", Body=b"abc")  # no markers at all
    raw.put_object(Bucket=bucket, Key="both/", Body=b"")
    raw.put_object(Bucket=bucket, Key="both/child", Body=b"c")
    ufs = connector(s3_server, bucket)
    assert {(e.name, e.is_dir) for e in ufs.list("")} == {
        ("marker", True), ("implicit", True), ("both", True),
    }  # fmt: skip
    assert ufs.stat("marker").is_dir and ufs.stat("implicit").is_dir
    assert ufs.stat("implicit/deeper").is_dir
    assert list(ufs.list("marker")) == []
    assert [e.name for e in ufs.list("implicit/deeper")] == ["file"]
    assert [e.name for e in ufs.list("both")] == ["child"]
    ufs.rmdir("marker")
    with pytest.raises(UfsNotFound):
        ufs.stat("marker")


def test_listing_streams_page_by_page(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    ufs = connector(s3_server, bucket, page_size=100)
    raw = s3_client(s3_server.endpoint)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: raw.put_object(Bucket=bucket, Key=f"d/k{i:04d}", Body=b""),
                      range(1000)))  # fmt: skip
    calls: list[int] = []
    ufs.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(1))
    stream = ufs.list("d")
    next(stream)
    assert len(calls) == 1  # the first entry came from the first page alone
    assert sum(1 for _ in stream) == 999
    assert len(calls) == 10


def test_a_large_write_goes_multipart(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    ufs = connector(s3_server, bucket, multipart_threshold=8 * MiB, multipart_chunk=8 * MiB)
    status = ufs.write("multi", PatternStream(20 * MiB))  # type: ignore[arg-type]
    assert status.fingerprint.endswith("-3")  # an ETag of a 3-part upload: "<md5>-3"
    small = ufs.write("single", io.BytesIO(b"x" * 1000))
    assert "-" not in small.fingerprint.split("-", 1)[1]


def test_copies_of_a_streamed_upload_verify_when_read_whole(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """A file written through the mount is a multipart upload whose checksum is one of its
    parts' checksums: a metadata change (a copy onto itself), a link and a rename must each
    give the new object a checksum of its whole bytes, or a whole GET with checksum validation
    (botocore's default) refuses it."""
    bucket = new_bucket(s3_server)
    ufs = connector(s3_server, bucket, multipart_chunk=8 * MiB)
    staged = ufs.stage("multi", str(tmp_path))
    data = os.urandom(9 * MiB + 7)
    for off in range(0, len(data), MiB):  # as the mount's write buffer: pwrite, then report
        os.pwrite(staged.fd, data[off : off + MiB], off)  # type: ignore[union-attr]
        staged.wrote(off, min(off + MiB, len(data)))  # type: ignore[union-attr]
    assert ufs.land(staged, "multi").fingerprint.endswith("-2")  # type: ignore[arg-type]
    os.close(staged.fd)  # type: ignore[union-attr]
    ufs.set_attrs("multi", UfsAttrs(mtime_ns=1_500_000_000_123_456_789))
    ufs.set_xattrs("multi", {"user.tag": b"x"})
    ufs.link("multi", "linked")
    ufs.rename("linked", "renamed")
    reader = s3_client(s3_server.endpoint)  # validates the checksum of a whole GET
    for key in ("multi", "renamed"):
        body = reader.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == data, key


def test_uri_and_options(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    ufs = open_ufs(
        f"s3://{bucket}/some%20prefix",
        {"endpoint": s3_server.endpoint, "path_style": "true", "region": "us-east-1"},
        CREDS,
    )
    assert isinstance(ufs, S3UnderFS) and ufs.prefix == "some prefix"
    assert SECRET_KEY not in repr(ufs)


def test_posix_metadata_of_other_s3_file_systems(s3_server: S3Server) -> None:
    """x-amz-meta-mode/uid/gid/mtime as s3fs-fuse and rclone write them are read back by stat
    and list; an object without them has none; what Shoal writes, they read."""
    bucket = new_bucket(s3_server)
    raw = s3_client(s3_server.endpoint)
    s3fs_style = {"mode": "33152", "uid": "1000", "gid": "1000", "mtime": "1700000000"}
    raw.put_object(Bucket=bucket, Key="d/s3fs", Body=b"a", Metadata=s3fs_style)
    rclone_style = {"mtime": "1700000000.5"}
    raw.put_object(Bucket=bucket, Key="d/rclone", Body=b"b", Metadata=rclone_style)
    raw.put_object(Bucket=bucket, Key="d/plain", Body=b"c")
    raw.put_object(Bucket=bucket, Key="d/bad", Body=b"d", Metadata={"mode": "rw", "uid": "-1"})
    raw.put_object(Bucket=bucket, Key="d/sub/", Body=b"", Metadata={"mode": str(0o40750)})
    ufs = connector(s3_server, bucket)
    listed = {e.name: known(ufs, e) for e in ufs.list("d")}
    for name, status in listed.items():
        assert ufs.stat(f"d/{name}") == status, name
    s3fs, rclone, plain = listed["s3fs"], listed["rclone"], listed["plain"]
    assert (s3fs.mode, s3fs.uid, s3fs.gid, s3fs.mtime_ns) == (0o600, 1000, 1000, 1700000000 * 10**9)
    assert rclone.mode is None and rclone.mtime_ns == 1700000000 * 10**9 + 500_000_000
    assert (plain.mode, plain.uid, plain.gid) == (None, None, None) and plain.mtime_ns > 0
    assert (listed["bad"].mode, listed["bad"].uid) == (None, None)
    assert listed["sub"].is_dir and listed["sub"].mode == 0o750
    ufs.write("d/ours", io.BytesIO(b"e"), UfsAttrs(0o640, 7, 8, 1_600_000_000_000_000_001))
    ufs.mkdir("d/made", UfsAttrs(0o700, 7, 8))
    assert raw.head_object(Bucket=bucket, Key="d/ours")["Metadata"] == {
        "mode": "33184", "uid": "7", "gid": "8", "mtime": "1600000000.000000001",
    }  # fmt: skip
    assert raw.head_object(Bucket=bucket, Key="d/made/")["Metadata"]["mode"] == "16832"
    ufs.set_attrs("d/plain", UfsAttrs(mode=0o604))
    assert raw.get_object(Bucket=bucket, Key="d/plain")["Body"].read() == b"c"
    assert raw.head_object(Bucket=bucket, Key="d/plain")["Metadata"] == {"mode": "33156"}
    # Without posix_metadata a listing asks no HEADs, and nothing has attributes.
    quick = connector(s3_server, bucket, posix_metadata=False)
    heads: list[int] = []
    quick.client.meta.events.register("before-call.s3.HeadObject", lambda **kw: heads.append(1))
    assert {e.mode for e in quick.list("d")} == {None} and heads == []
    ufs.close()
    quick.close()


def test_a_listing_heads_no_object_and_a_get_brings_its_metadata(s3_server: S3Server) -> None:
    """LIST returns no metadata and a HEAD costs a store a GET's work: a listing HEADs only
    directory markers and empty objects (a special file's type is in its metadata), never an
    object with bytes; those say their attributes are unread, and a GET's reply brings them."""
    bucket = new_bucket(s3_server)
    raw = s3_client(s3_server.endpoint)
    meta = {"mode": str(0o100600), "uid": "1000", "gid": "1001", "mtime": "1700000000"}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: raw.put_object(Bucket=bucket, Key=f"d/f{i:03d}", Body=b"data",
                                               Metadata=meta), range(200)))  # fmt: skip
    raw.put_object(Bucket=bucket, Key="d/sub/", Body=b"", Metadata={"mode": str(0o40750)})
    raw.put_object(Bucket=bucket, Key="d/empty", Body=b"")
    ufs = connector(s3_server, bucket, page_size=100)
    heads: list[str] = []
    gets: list[int] = []
    events = ufs.client.meta.events
    events.register(
        "before-parameter-build.s3.HeadObject", lambda params, **kw: heads.append(params["Key"])
    )
    events.register("before-call.s3.GetObject", lambda **kw: gets.append(1))
    listed = {e.name: e for e in ufs.list("d")}
    assert len(listed) == 202 and sorted(heads) == ["d/empty", "d/sub/"] and gets == []
    assert listed["sub"].mode == 0o750 and listed["empty"].attrs_known
    f = listed["f007"]
    assert not f.attrs_known and (f.mode, f.uid, f.gid) == (None, None, None) and f.size == 4
    seen: list[UfsStatus] = []
    assert b"".join(ufs.read_stream("d/f007", 1, 2, seen.append)) == b"at"
    assert len(heads) == 2 and len(gets) == 1  # the GET alone brought them
    (got,) = seen
    assert (got.mode, got.uid, got.gid, got.mtime_ns) == (0o600, 1000, 1001, 1700000000 * 10**9)
    assert got.attrs_known and (got.size, got.fingerprint) == (f.size, f.fingerprint)
    assert got == ufs.stat("d/f007")
    ufs.close()


def test_a_listing_and_a_get_parse_their_timestamps_without_dateutil(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore parses each timestamp with dateutil (~30-40 µs, on the daemon's GIL): one per
    listed object and one per GET of a cold epoch. The connector's parser (ufs/s3time.py)
    gives the same instants without it."""
    bucket = new_bucket(s3_server)
    raw = s3_client(s3_server.endpoint)
    for i in range(30):
        raw.put_object(Bucket=bucket, Key=f"d/f{i:02d}", Body=b"data")
    expected = {
        obj["Key"][2:]: int(obj["LastModified"].timestamp() * 10**9)
        for obj in raw.list_objects_v2(Bucket=bucket, Prefix="d/")["Contents"]
    }
    ufs = connector(s3_server, bucket)
    calls: list[object] = []
    parse = dateutil.parser.parse

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return parse(*args, **kwargs)

    monkeypatch.setattr(dateutil.parser, "parse", counted)
    listed = {e.name: e.mtime_ns for e in ufs.list("d")}
    seen: list[UfsStatus] = []
    assert b"".join(ufs.read_stream("d/f07", 0, 4, seen.append)) == b"data"
    assert calls == []
    assert listed == expected and seen[0].mtime_ns == expected["f07"]
    ufs.close()

"""Faults on the wire between the S3 connector and a real S3 endpoint (moto over HTTP), injected
by a proxy on 127.0.0.1: what can succeed by retrying does, what cannot fails at once with an
error that names the cause, and a failed upload leaves nothing half-written behind."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server, start_s3_server
from tests.ufs.contract import MiB, PatternStream
from tests.ufs.stores import CREDS, new_bucket
from ufs.errors import UfsAccessDenied, UfsBucketMissing, UfsNotFound, UfsUnavailable
from ufs.s3 import S3Options, S3UnderFS
from ufs.uri import open_ufs

ROOT = Path(__file__).resolve().parents[2]


def through(proxy: FaultProxy, bucket: str, **options: object) -> S3UnderFS:
    settings: dict[str, object] = {"max_attempts": 4, "read_timeout_s": 2.0, "region": "us-east-1"}
    settings.update(options)
    opts = S3Options(endpoint=proxy.endpoint, path_style=True, **settings)  # type: ignore[arg-type]
    return S3UnderFS(bucket, "", opts, CREDS)


def gets(proxy: FaultProxy) -> int:
    return sum(1 for method, _ in proxy.requests if method == "GET")


@pytest.mark.parametrize("status", [503, 500])
def test_throttling_and_server_errors_are_retried(proxy: FaultProxy, s3_server: S3Server,
                                                  status: int) -> None:  # fmt: skip
    bucket = new_bucket(s3_server)
    ufs = through(proxy, bucket)
    ufs.write("f", io.BytesIO(b"payload"))
    proxy.clear()
    proxy.add(Fault("status", 2, status=status, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"
    assert gets(proxy) == 3  # two refused, the third served


def test_a_dropped_connection_is_retried(proxy: FaultProxy, s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    ufs = through(proxy, bucket)
    ufs.write("f", io.BytesIO(b"payload"))
    proxy.clear()
    proxy.add(Fault("drop", 1, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"
    assert gets(proxy) == 2


def test_a_slow_answer_times_out_and_is_retried(proxy: FaultProxy, s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    ufs = through(proxy, bucket, read_timeout_s=0.5)
    ufs.write("f", io.BytesIO(b"payload"))
    proxy.clear()
    proxy.add(Fault("delay", 1, seconds=1.5, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"


def test_throttling_that_never_ends_is_a_clear_error(proxy: FaultProxy,
                                                      s3_server: S3Server) -> None:  # fmt: skip
    bucket = new_bucket(s3_server)
    ufs = through(proxy, bucket, max_attempts=3)
    ufs.write("f", io.BytesIO(b"payload"))
    proxy.clear()
    proxy.add(Fault("status", -1, status=503, method="GET"))
    with pytest.raises(UfsUnavailable, match="after 3 attempts.*SlowDown"):
        ufs.read("f", 0, 100)
    assert gets(proxy) == 3, proxy.requests


def test_a_timeout_that_never_ends_is_a_clear_error(proxy: FaultProxy,
                                                     s3_server: S3Server) -> None:  # fmt: skip
    bucket = new_bucket(s3_server)
    ufs = through(proxy, bucket, max_attempts=2, read_timeout_s=0.3)
    ufs.write("f", io.BytesIO(b"payload"))
    proxy.add(Fault("delay", -1, seconds=1.0, method="GET"))
    with pytest.raises(UfsUnavailable, match="unreachable after 2 attempts.*ReadTimeout"):
        ufs.read("f", 0, 100)


def test_an_endpoint_that_is_down_is_a_clear_error(proxy: FaultProxy,
                                                   s3_server: S3Server) -> None:  # fmt: skip
    bucket = new_bucket(s3_server)
    ufs = through(proxy, bucket, max_attempts=2, connect_timeout_s=0.5)
    proxy.stop()
    with pytest.raises(UfsUnavailable, match="unreachable"):
        ufs.stat("anything")


def test_a_failed_multipart_upload_leaves_nothing_and_keeps_the_old_object(
    proxy: FaultProxy, s3_server: S3Server
) -> None:
    bucket = new_bucket(s3_server)
    ufs = through(proxy, bucket, max_attempts=2, multipart_threshold=8 * MiB,
                  multipart_chunk=8 * MiB)  # fmt: skip
    ufs.write("model.ckpt", io.BytesIO(b"old checkpoint"))
    proxy.add(Fault("status", -1, status=500, method="PUT", query="partNumber=2"))
    with pytest.raises(UfsUnavailable):
        ufs.write("model.ckpt", PatternStream(24 * MiB))  # type: ignore[arg-type]
    proxy.clear()
    assert ufs.read("model.ckpt", 0, 100) == b"old checkpoint"
    raw = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="y")  # fmt: skip
    assert raw.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # aborted


def test_a_missing_bucket_is_not_retried(proxy: FaultProxy) -> None:
    with pytest.raises(UfsBucketMissing, match="does not exist"):
        open_ufs(
            "s3://missing-bucket-xyz",
            {"endpoint": proxy.endpoint, "path_style": "true", "region": "us-east-1"},
            CREDS,
        )
    assert len(proxy.requests) == 1


@pytest.fixture(scope="module")
def auth_server() -> Iterator[tuple[S3Server, dict[str, str]]]:
    """A moto server that checks credentials: the first few calls (unauthenticated) create a
    user with full S3 access and its key; every later call must be signed by that key."""
    server = start_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="y")  # fmt: skip
        iam.create_user(UserName="trainer")
        policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",'
        policy += ' "Resource": "*"}]}'
        iam.put_user_policy(UserName="trainer", PolicyName="s3", PolicyDocument=policy)
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        creds = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id=creds["access_key"],
                     aws_secret_access_key=creds["secret_key"],
                     ).create_bucket(Bucket="secured")  # fmt: skip
        yield server, creds
    finally:
        server.stop()


def test_wrong_credentials_are_a_clear_error(auth_server: tuple[S3Server, dict[str, str]]) -> None:
    server, good = auth_server
    options = {"endpoint": server.endpoint, "path_style": "true", "region": "us-east-1"}
    assert open_ufs("s3://secured", options, good).stat("").is_dir
    with pytest.raises(UfsNotFound):
        open_ufs("s3://secured", options, good).stat("nothing")
    wrong_secret = {**good, "secret_key": "not-the-secret"}
    with pytest.raises(UfsAccessDenied, match="access denied.*check the credentials"):
        open_ufs("s3://secured", options, wrong_secret).stat("x")
    unknown_key = {"access_key": "AKIAUNKNOWNKEY000000", "secret_key": "whatever"}
    with pytest.raises(UfsAccessDenied, match="check the credentials"):
        open_ufs("s3://secured", options, unknown_key)


def test_no_error_shows_the_secret(auth_server: tuple[S3Server, dict[str, str]]) -> None:
    server, good = auth_server
    code = (
        "import sys; from ufs.uri import open_ufs\n"
        "open_ufs('s3://secured', {'endpoint': sys.argv[1], 'path_style': 'true',"
        " 'region': 'us-east-1'}, {'access_key': sys.argv[2], 'secret_key': 'bad-secret-123'})"
    )
    proc = subprocess.run([sys.executable, "-c", code, server.endpoint, good["access_key"]],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0
    assert "UfsAccessDenied" in proc.stderr
    assert "bad-secret-123" not in proc.stderr + proc.stdout

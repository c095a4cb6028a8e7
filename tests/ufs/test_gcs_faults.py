"""Faults on the wire between the GCS connector and the GCS emulator, injected by the fault proxy
on 127.0.0.1 (as tests/ufs/test_s3_faults.py does for S3): what can succeed by retrying does,
what cannot fails at once with an error that names the cause, and a failed resumable upload is
cancelled with the old object kept."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.gcsserver import GCSServer
from tests.ufs.contract import MiB, PatternStream
from ufs.errors import UfsAccessDenied, UfsBucketMissing, UfsUnavailable
from ufs.gcs import GCSUnderFS
from ufs.gcsoptions import GCSOptions
from ufs.uri import open_ufs

ROOT = Path(__file__).resolve().parents[2]


def gcs_through(proxy: FaultProxy, bucket: str, **options: object) -> GCSUnderFS:
    settings: dict[str, object] = {"max_attempts": 4, "read_timeout_s": 2.0}
    settings.update(options)
    return GCSUnderFS(bucket, "", GCSOptions(endpoint=proxy.endpoint, **settings))  # type: ignore[arg-type]


def gcs_gets(proxy: FaultProxy) -> int:
    return sum(1 for method, _ in proxy.requests if method == "GET")


@pytest.mark.parametrize("status", [503, 500])
def test_gcs_server_errors_are_retried(gcs_proxy: FaultProxy, gcs_server: GCSServer,
                                       status: int) -> None:  # fmt: skip
    ufs = gcs_through(gcs_proxy, gcs_server.create_bucket())
    ufs.write("f", io.BytesIO(b"payload"))
    gcs_proxy.clear()
    gcs_proxy.add(Fault("status", 2, status=status, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"
    assert gcs_gets(gcs_proxy) == 3  # two refused, the third served


def test_gcs_dropped_connection_is_retried(gcs_proxy: FaultProxy, gcs_server: GCSServer) -> None:
    ufs = gcs_through(gcs_proxy, gcs_server.create_bucket())
    ufs.write("f", io.BytesIO(b"payload"))
    gcs_proxy.clear()
    gcs_proxy.add(Fault("drop", 1, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"
    assert gcs_gets(gcs_proxy) == 2


def test_gcs_slow_answer_times_out_and_is_retried(gcs_proxy: FaultProxy,
                                                  gcs_server: GCSServer) -> None:  # fmt: skip
    ufs = gcs_through(gcs_proxy, gcs_server.create_bucket(), read_timeout_s=0.5)
    ufs.write("f", io.BytesIO(b"payload"))
    gcs_proxy.clear()
    gcs_proxy.add(Fault("delay", 1, seconds=1.5, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"
    assert gcs_gets(gcs_proxy) == 2


def test_gcs_errors_that_never_end_are_a_clear_error(gcs_proxy: FaultProxy,
                                                     gcs_server: GCSServer) -> None:  # fmt: skip
    ufs = gcs_through(gcs_proxy, gcs_server.create_bucket(), max_attempts=3)
    ufs.write("f", io.BytesIO(b"payload"))
    gcs_proxy.clear()
    gcs_proxy.add(Fault("status", -1, status=503, method="GET"))
    with pytest.raises(UfsUnavailable, match="after 3 attempts.*503"):
        ufs.read("f", 0, 100)
    assert gcs_gets(gcs_proxy) == 3, gcs_proxy.requests


def test_gcs_endpoint_that_is_down_is_a_clear_error(gcs_proxy: FaultProxy,
                                                    gcs_server: GCSServer) -> None:  # fmt: skip
    ufs = gcs_through(gcs_proxy, gcs_server.create_bucket(), max_attempts=2, connect_timeout_s=0.5)
    gcs_proxy.stop()
    with pytest.raises(UfsUnavailable, match="unreachable after 2 attempts"):
        ufs.stat("anything")


def test_gcs_reset_mid_read_is_an_error_never_a_short_block(
    gcs_proxy: FaultProxy, gcs_server: GCSServer
) -> None:
    ufs = gcs_through(gcs_proxy, gcs_server.create_bucket(), read_timeout_s=0.5, max_attempts=2)
    data = bytes(range(256)) * 4096  # 1 MiB
    ufs.write("f", io.BytesIO(data))
    stall = Fault("stall", 1, keep=300_000, method="GET")
    gcs_proxy.add(stall)
    try:
        got = bytearray()
        with pytest.raises(UfsUnavailable):
            for chunk in ufs.read_stream("f", 0, len(data)):
                got += chunk
        assert len(got) < len(data) and data.startswith(bytes(got))
        gcs_proxy.add(Fault("stall", 1, keep=300_000, method="GET"))
        assert ufs.read("f", 0, len(data)) == data  # a whole read is retried by the client
    finally:
        stall.release.set()
        for fault in gcs_proxy.faults:
            fault.release.set()


def test_gcs_failed_resumable_upload_is_cancelled_and_keeps_the_old_object(
    gcs_proxy: FaultProxy, gcs_server: GCSServer
) -> None:
    ufs = gcs_through(gcs_proxy, gcs_server.create_bucket(), max_attempts=2,
                      resumable_threshold=MiB, resumable_chunk=MiB)  # fmt: skip
    ufs.write("model.ckpt", io.BytesIO(b"old checkpoint"))
    before = ufs.stat("model.ckpt")
    gcs_proxy.clear()
    gcs_proxy.add(Fault("status", -1, status=500, method="PUT", query="upload_id"))
    with pytest.raises(UfsUnavailable):
        ufs.write("model.ckpt", PatternStream(4 * MiB))  # type: ignore[arg-type]
    assert any(m == "DELETE" and "upload_id" in p for m, p in gcs_proxy.requests)  # cancelled
    gcs_proxy.clear()
    assert ufs.read("model.ckpt", 0, 100) == b"old checkpoint"
    assert ufs.stat("model.ckpt") == before
    assert [e.name for e in ufs.list("")] == ["model.ckpt"]


def test_gcs_missing_bucket_is_not_retried(gcs_proxy: FaultProxy) -> None:
    with pytest.raises(UfsBucketMissing, match="does not exist"):
        open_ufs("gs://missing-bucket-xyz", {"endpoint": gcs_proxy.endpoint})
    assert len(gcs_proxy.requests) == 1


def test_gcs_refused_credentials_are_a_clear_error_without_the_key(
    gcs_server: GCSServer, tmp_path: Path
) -> None:
    """A service account whose token the token endpoint refuses (here: one that answers 404):
    access denied, saying what to check, and no part of the private key in the message."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    key = {
        "type": "service_account", "project_id": "shoal-test", "private_key_id": "k1",
        "private_key": pem, "client_email": "trainer@shoal-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": f"{gcs_server.endpoint}/no-token-here",
    }  # fmt: skip
    bucket = gcs_server.create_bucket()
    with pytest.raises(UfsAccessDenied, match="access denied.*check the credentials") as err:
        open_ufs(f"gs://{bucket}", {"endpoint": gcs_server.endpoint},
                 {"service_account": json.dumps(key)})  # fmt: skip
    assert pem.splitlines()[1] not in str(err.value)
    with pytest.raises(UfsAccessDenied, match="not a service account's JSON key"):
        open_ufs(f"gs://{bucket}", {"endpoint": gcs_server.endpoint},
                 {"service_account": "{not json"})  # fmt: skip


def test_gcs_without_any_credentials_is_a_clear_error(tmp_path: Path) -> None:
    """No key, no application default credentials, no metadata server: access denied, saying
    the ways to give them (in a process of its own: the environment is google.auth's input)."""
    code = (
        "from ufs.uri import open_ufs\n"
        "from ufs.errors import UfsAccessDenied\n"
        "try:\n    open_ufs('gs://some-bucket', {})\n"
        "except UfsAccessDenied as exc:\n    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK"))}
    env.update(GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9",
               CLOUDSDK_CONFIG=str(tmp_path / "no-gcloud"), PYTHONPATH=str(ROOT))  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert "no credentials: give -o service_account_file=PATH" in proc.stdout, proc.stderr

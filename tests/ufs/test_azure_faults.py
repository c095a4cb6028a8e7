"""Faults on the wire between the Azure connector and Azurite, injected by a proxy on 127.0.0.1
(as tests/ufs/test_s3_faults.py does for S3): what can succeed by retrying does, with the SDK's
own retry policy; what cannot fails at once with an error that names the cause; a failed staged
upload commits nothing and the old blob stays."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.bench.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from cli.bench.faultproxy import Fault, FaultProxy
from tests.ufs.contract import MiB, PatternStream
from tests.ufs.stores import AZURE_CREDS, azure_container
from ufs.azure import AzureUnderFS
from ufs.azureoptions import AzureOptions
from ufs.errors import UfsAccessDenied, UfsBucketMissing, UfsUnavailable, UfsUnsupported
from ufs.uri import open_ufs

ROOT = Path(__file__).resolve().parents[2]
FAST = {"max_attempts": 4, "read_timeout_s": 2.0, "retry_backoff_s": 0.05, "retry_base": 0.1}


def az_through(proxy: FaultProxy, container: str, **options: object) -> AzureUnderFS:
    settings: dict[str, object] = {**FAST, **options}
    opts = AzureOptions(account=ACCOUNT, endpoint=f"{proxy.endpoint}/{ACCOUNT}", **settings)  # type: ignore[arg-type]
    return AzureUnderFS(container, "", opts, AZURE_CREDS)


def az_gets(proxy: FaultProxy) -> int:
    return sum(1 for method, _ in proxy.requests if method == "GET")


def written(azurite: Azurite, proxy: FaultProxy, data: bytes = b"payload") -> AzureUnderFS:
    ufs = az_through(proxy, azure_container(azurite).container_name)
    ufs.write("f", io.BytesIO(data))
    proxy.clear()
    return ufs


@pytest.mark.parametrize("status", [503, 500])
def test_azure_throttling_and_server_errors_are_retried(
    azure_proxy: FaultProxy, azurite: Azurite, status: int
) -> None:
    ufs = written(azurite, azure_proxy)
    azure_proxy.add(Fault("status", 2, status=status, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"
    assert az_gets(azure_proxy) == 3  # two refused, the third served


def test_azure_a_dropped_connection_is_retried(azure_proxy: FaultProxy, azurite: Azurite) -> None:
    ufs = written(azurite, azure_proxy)
    azure_proxy.add(Fault("drop", 1, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"
    assert az_gets(azure_proxy) == 2


def test_azure_a_reset_mid_read_is_resumed(azure_proxy: FaultProxy, azurite: Azurite) -> None:
    data = os.urandom(MiB)
    ufs = written(azurite, azure_proxy, data)
    azure_proxy.add(Fault("cut", 1, method="GET", keep=300 * 1024))
    assert ufs.read("f", 0, MiB) == data
    assert az_gets(azure_proxy) >= 2  # the cut one, then the rest


def test_azure_a_slow_answer_times_out_and_is_retried(
    azure_proxy: FaultProxy, azurite: Azurite
) -> None:
    ufs = az_through(azure_proxy, azure_container(azurite).container_name, read_timeout_s=0.5)
    ufs.write("f", io.BytesIO(b"payload"))
    azure_proxy.add(Fault("delay", 1, seconds=1.5, method="GET"))
    assert ufs.read("f", 0, 100) == b"payload"


def test_azure_throttling_that_never_ends_is_a_clear_error(
    azure_proxy: FaultProxy, azurite: Azurite
) -> None:
    ufs = az_through(azure_proxy, azure_container(azurite).container_name, max_attempts=3)
    ufs.write("f", io.BytesIO(b"payload"))
    azure_proxy.clear()
    azure_proxy.add(Fault("status", -1, status=503, method="GET"))
    with pytest.raises(UfsUnavailable, match="after 3 attempts"):
        ufs.read("f", 0, 100)
    assert az_gets(azure_proxy) == 3, azure_proxy.requests


def test_azure_an_endpoint_that_is_down_is_a_clear_error(
    azure_proxy: FaultProxy, azurite: Azurite
) -> None:
    ufs = az_through(azure_proxy, azure_container(azurite).container_name, max_attempts=2,
                     connect_timeout_s=0.5)  # fmt: skip
    azure_proxy.stop()
    with pytest.raises(UfsUnavailable, match="unreachable after 2 attempts"):
        ufs.stat("anything")


def test_azure_a_failed_staged_upload_commits_nothing_and_keeps_the_old_blob(
    azure_proxy: FaultProxy, azurite: Azurite
) -> None:
    container = azure_container(azurite)
    ufs = az_through(azure_proxy, container.container_name, max_attempts=2,
                     block_threshold=4 * MiB, block_size=4 * MiB)  # fmt: skip
    ufs.write("model.ckpt", io.BytesIO(b"old checkpoint"))
    before = ufs.stat("model.ckpt")
    azure_proxy.add(Fault("status", -1, status=500, method="PUT", query="comp=blocklist"))
    with pytest.raises(UfsUnavailable):
        ufs.write("model.ckpt", PatternStream(10 * MiB))  # type: ignore[arg-type]
    azure_proxy.clear()
    assert ufs.read("model.ckpt", 0, 100) == b"old checkpoint"
    assert ufs.stat("model.ckpt") == before
    committed, _staged = container.get_blob_client("model.ckpt").get_block_list("all")
    assert committed == []  # still the one Put Blob: no block of the failed write is in it


def test_azure_a_missing_container_is_not_retried(azure_proxy: FaultProxy) -> None:
    options = {"account": ACCOUNT, "endpoint": f"{azure_proxy.endpoint}/{ACCOUNT}"}
    with pytest.raises(UfsBucketMissing, match="container 'missing-container' does not exist"):
        open_ufs("az://missing-container", options, AZURE_CREDS)
    assert len(azure_proxy.requests) == 1


def test_azure_wrong_credentials_are_a_clear_error(azurite: Azurite) -> None:
    container = azure_container(azurite).container_name
    assert open_ufs(f"az://{container}", azurite.options, AZURE_CREDS).stat("").is_dir
    wrong = {"account_key": "bm90LXRoZS1rZXk" + "A" * 73 + "=="}
    with pytest.raises(UfsAccessDenied, match="access denied.*check the credentials"):
        open_ufs(f"az://{container}", azurite.options, wrong)
    with pytest.raises(UfsAccessDenied, match="access denied"):
        open_ufs(f"az://{container}", azurite.options, {"sas_token": "sv=2020-08-04&sig=bad"})


def test_azure_no_error_shows_the_secret(azurite: Azurite) -> None:
    container = azure_container(azurite).container_name
    code = (
        "import sys; from ufs.uri import open_ufs\n"
        "open_ufs(sys.argv[1], {'account': 'devstoreaccount1', 'endpoint': sys.argv[2]},"
        " {'sas_token': 'sv=2020-08-04&ss=b&srt=sco&sp=r&sig=bad-secret-123'})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"az://{container}", azurite.endpoint],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "UfsAccessDenied" in proc.stderr
    assert "bad-secret-123" not in proc.stderr + proc.stdout


def test_azure_a_sas_connection_string_and_its_errors(azurite: Azurite) -> None:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    sas = generate_account_sas(
        ACCOUNT, ACCOUNT_KEY, ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    creds = {"connection_string": f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={sas}"}
    container = azure_container(azurite).container_name
    ufs = open_ufs(f"az://{container}/p", {}, creds)
    ufs.write("f", io.BytesIO(b"through a SAS"))
    assert ufs.read("f", 0, 100) == b"through a SAS"
    with pytest.raises(UfsBucketMissing) as missing:
        open_ufs("az://no-such-container", {}, creds)
    assert azurite.endpoint in str(missing.value)
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    assert signature not in str(missing.value) and "sig=" not in str(missing.value)


def test_azure_a_hierarchical_namespace_account_is_refused(azure_proxy: FaultProxy,
                                                           azurite: Azurite) -> None:  # fmt: skip
    # Azurite's account has none: the proxy makes its Get Account Information say it has.
    container = azure_container(azurite).container_name
    options = {"account": ACCOUNT, "endpoint": f"{azure_proxy.endpoint}/{ACCOUNT}"}
    assert open_ufs(f"az://{container}", options, AZURE_CREDS).stat("").is_dir
    azure_proxy.add(Fault("header", 1, query="restype=account",
                          headers={"x-ms-is-hns-enabled": "true"}))  # fmt: skip
    with pytest.raises(UfsUnsupported, match=r"hierarchical namespace \(ADLS Gen2\)"):
        open_ufs(f"az://{container}", options, AZURE_CREDS)

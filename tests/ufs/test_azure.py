"""The connector contract against Azure Blob served by Azurite over real HTTP on 127.0.0.1, plus
what only a blob store has: marker and implicit directories, streaming pages, staged blocks,
fingerprints, and the mount options."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cli.bench.azurite import Azurite
from cli.bench.faultproxy import FaultProxy
from tests.ufs.contract import MiB, PatternStream, UnderFSContract
from tests.ufs.stores import AZURE_CREDS, azure_container
from ufs.azure import AzureUnderFS
from ufs.azureoptions import AzureOptions
from ufs.base import UnderFS
from ufs.errors import UfsError, UfsNotFound


def az_connector(server: Azurite, container: str, prefix: str = "", **options: Any) -> AzureUnderFS:
    opts = AzureOptions(account="devstoreaccount1", endpoint=server.endpoint, **options)
    return AzureUnderFS(container, prefix, opts, AZURE_CREDS)


class TestAzureUnderFS(UnderFSContract):
    @pytest.fixture
    def ufs(self, azurite: Azurite) -> Iterator[UnderFS]:
        # Under a prefix, so blobs outside it (another mount's) must stay invisible.
        container = azure_container(azurite)
        container.upload_blob("elsewhere/x", b"x")
        ufs = az_connector(azurite, container.container_name, "data/set",
                           block_threshold=8 * MiB, block_size=8 * MiB)  # fmt: skip
        yield ufs
        ufs.close()

    def populate(self, ufs: UnderFS, paths: list[str]) -> None:
        assert isinstance(ufs, AzureUnderFS)
        client = ufs.client
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda p: client.upload_blob(f"data/set/{p}", b"x"), paths))


def test_azure_marker_and_implicit_directories(azurite: Azurite) -> None:
    raw = azure_container(azurite)
    raw.upload_blob("marker/", b"")  # an empty directory, S3-style
    raw.upload_blob("implicit/deeper/file", b"abc")  # no markers at all
    raw.upload_blob("both/", b"")
    raw.upload_blob("both/child", b"c")
    ufs = az_connector(azurite, raw.container_name)
    assert {(e.name, e.is_dir) for e in ufs.list("")} == {
        ("marker", True), ("implicit", True), ("both", True),
    }  # fmt: skip
    assert ufs.stat("marker").is_dir and ufs.stat("implicit").is_dir
    assert ufs.stat("implicit/deeper").is_dir
    assert list(ufs.list("marker")) == []
    assert [e.name for e in ufs.list("implicit/deeper")] == ["file"]
    assert [e.name for e in ufs.list("both")] == ["child"]
    ufs.delete("implicit/deeper/file")  # its directory stays, now with a marker
    assert ufs.stat("implicit/deeper").is_dir
    ufs.rmdir("marker")
    with pytest.raises(UfsNotFound):
        ufs.stat("marker")


def test_azure_listing_streams_page_by_page(azurite: Azurite, azure_proxy: FaultProxy) -> None:
    raw = azure_container(azurite)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: raw.upload_blob(f"d/k{i:04d}", b""), range(300)))
    ufs = AzureUnderFS(raw.container_name, "", AzureOptions(
        account="devstoreaccount1", endpoint=f"{azure_proxy.endpoint}/devstoreaccount1",
        page_size=100), AZURE_CREDS)  # fmt: skip

    def lists() -> int:
        return sum(1 for method, path in azure_proxy.requests if "comp=list" in path)

    stream = ufs.list("d")
    assert next(stream).name == "k0000"
    assert lists() == 1  # the first page only
    assert len([e.name for e in stream]) == 299
    assert lists() == 3


def test_azure_large_writes_go_as_staged_blocks_with_the_content_md5(azurite: Azurite) -> None:
    raw = azure_container(azurite)
    ufs = az_connector(azurite, raw.container_name, block_threshold=MiB, block_size=MiB)
    source = PatternStream(3 * MiB + 5, seed=3)
    status = ufs.write("blocks", source)  # type: ignore[arg-type]
    blob = raw.get_blob_client("blocks")
    committed, _uncommitted = blob.get_block_list("all")
    assert [b.size for b in committed] == [MiB, MiB, MiB, 5]
    props = blob.get_blob_properties()
    import hashlib

    digest = hashlib.md5(ufs.read("blocks", 0, status.size), usedforsecurity=False).digest()
    assert bytes(props.content_settings.content_md5) == digest
    assert status.fingerprint == f"{3 * MiB + 5}-{digest.hex()}"
    small = ufs.write("small", io.BytesIO(b"x" * 100))
    assert raw.get_blob_client("small").get_block_list("all")[0] == []  # one Put Blob
    assert small.fingerprint.startswith("100-")


def test_azure_overwrite_by_another_tool_changes_the_fingerprint(azurite: Azurite) -> None:
    raw = azure_container(azurite)
    ufs = az_connector(azurite, raw.container_name)
    before = ufs.write("f", io.BytesIO(b"A" * 10))
    raw.upload_blob("f", b"B" * 10, overwrite=True)  # no MD5 given: the ETag or the store's
    assert ufs.stat("f").fingerprint != before.fingerprint


def test_azure_options_are_checked_by_name() -> None:
    with pytest.raises(UfsError, match="unknown Azure mount option 'account_name'.*'account'"):
        AzureOptions.parse({"account_name": "x"})
    with pytest.raises(UfsError, match="endpoint.*has no scheme"):
        AzureOptions.parse({"endpoint": "127.0.0.1:10000"})
    with pytest.raises(UfsError, match="block_size: 0 is not positive"):
        AzureOptions.parse({"block_size": "0"})
    parsed = AzureOptions.parse({"account": "a", "account_key": "secret", "page_size": "5"})
    assert parsed == AzureOptions(account="a", page_size=5)

"""Azure Blob (Azurite over HTTP) through real Shoal mounts: `shoal mount az://...` read twice,
the second pass served by Shoal's cache with no request reaching the store (counted at a proxy);
and `shoal fs mount /az az://...` beside `/s3` in one namespace, its key kept only in the home's
credentials file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli.bench.azurite import ACCOUNT_KEY, Azurite
from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import S3Server
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import AzureStore, S3Store


def blob_gets(proxy: FaultProxy) -> list[str]:
    """The reads of blob data the proxy passed on (not listings nor property requests)."""
    return [path for method, path in proxy.requests if method == "GET" and "comp=" not in path]


def read_dropping_pages(path: Path) -> bytes:
    """The file's bytes, asked of the FUSE file system: the kernel's page cache of it is
    dropped first (fadvise DONTNEED drops a FUSE file's pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def test_an_azure_mount_read_twice_asks_the_store_once(
    azurite: Azurite, azure_proxy: FaultProxy, tmp_path: Path
) -> None:
    files = {f"train/part-{i}.bin": os.urandom(200_000 + i) for i in range(4)}
    store = AzureStore(azurite)  # the test's own puts go straight to Azurite
    for key, data in files.items():
        store.put(key, data)
    store.options["endpoint"] = f"{azure_proxy.endpoint}/devstoreaccount1"
    with mounted(store, tmp_path) as m:
        for key, data in files.items():
            assert read_dropping_pages(m.path / key) == data
        first = blob_gets(azure_proxy)
        assert len(first) >= len(files)  # every file came from the store
        azure_proxy.clear()
        for key, data in files.items():
            assert read_dropping_pages(m.path / key) == data
        assert blob_gets(azure_proxy) == []  # the second pass: Shoal's cache only
        m.umount()


def test_fs_mount_az_beside_s3_in_one_namespace(
    azurite: Azurite, s3_server: S3Server, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    az, s3 = AzureStore(azurite), S3Store(s3_server)
    az.put("images/cat.jpg", b"meow")
    s3.put("labels/cat.txt", b"cat")
    key_file = tmp_path / "azure.key"
    key_file.write_text(ACCOUNT_KEY + "\n")
    key_file.chmod(0o600)
    shoal("init", home=home)
    shoal("fs", "mkdir", "/az", "/s3", home=home)
    s3_args = [a for k, v in s3.options.items() for a in ("-o", f"{k}={v}")]
    shoal("fs", "mount", "/s3", s3.uri, *s3_args, home=home)
    shoal("fs", "mount", "/az", az.uri, "-o", f"account={az.options['account']}",
          "-o", f"endpoint={az.options['endpoint']}", "-o", f"account_key_file={key_file}",
          home=home)  # fmt: skip
    listed = shoal("fs", "ls", "-R", "/", home=home).stdout
    sections = {b.split(":\n")[0]: b.split(":\n")[1].split() for b in listed.strip().split("\n\n")}
    assert {name for name in sections["/"] if name in ("az", "s3")} == {"az", "s3"}
    assert sections["/az/images"][-1] == "cat.jpg" and sections["/s3/labels"][-1] == "cat.txt"
    assert shoal("fs", "cat", "/az/images/cat.jpg", home=home).stdout == "meow"
    mounts = shoal("fs", "mounts", home=home).stdout
    assert az.uri in mounts and s3.uri in mounts
    # The key was given by reference: the home keeps the file's path, never the key itself.
    holding = [str(p) for p in home.rglob("*") if p.is_file() and ACCOUNT_KEY.encode()
               in p.read_bytes()]  # fmt: skip
    assert holding == []


def test_an_azure_mount_without_a_key_says_what_it_lacks(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An S3 user's environment: those variables are an S3 mount's credentials, which this one
    # does not take; with no secret of its own it goes to the default chain, whose package is
    # not installed here (and which finds no identity on this host if it is).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASHOULDNOTMATTER0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-azure-secret")
    store = AzureStore(azurite)
    (tmp_path / "mnt").mkdir()
    options = ["-o", "account=devstoreaccount1", "-o", f"endpoint={azurite.endpoint}"]
    mnt = str(tmp_path / "mnt")
    failed = shoal("mount", store.uri, mnt, *options, home=tmp_path / "home", expect=None)
    assert failed.returncode != 0
    assert "access_key" not in failed.stderr, failed.stderr
    assert "account_key, sas_token or connection_string" in failed.stderr or (
        "check the credentials" in failed.stderr
    ), failed.stderr

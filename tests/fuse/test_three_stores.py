"""Issue 18's picture: S3, Azure Blob and Google Cloud Storage mounted side by side in one
namespace (each against its real server on 127.0.0.1), listed and read by one `fs ls -R /`."""

from __future__ import annotations

from pathlib import Path

from cli.bench.azurite import ACCOUNT_KEY, Azurite
from cli.bench.gcsserver import GCSServer
from cli.bench.s3server import S3Server
from tests.cli.shoal_cli import shoal
from tests.ufs.stores import AzureStore, GCSStore, S3Store


def test_s3_azure_and_gcs_listed_by_one_fs_ls(
    s3_server: S3Server, azurite: Azurite, gcs_server: GCSServer, tmp_path: Path
) -> None:
    s3, az, gcs = S3Store(s3_server), AzureStore(azurite), GCSStore(gcs_server)
    s3.put("labels/cat.txt", b"from s3")
    az.put("images/cat.jpg", b"from azure")
    gcs.put("models/cat.ckpt", b"from gcs")
    key_file = tmp_path / "azure.key"
    key_file.write_text(ACCOUNT_KEY + "\n")
    key_file.chmod(0o600)
    home = tmp_path / "home"
    shoal("init", home=home)
    az_options = {**az.options, "account_key_file": str(key_file)}
    del az_options["account_key"]
    for at, store, options in (("/s3", s3, s3.options), ("/az", az, az_options),
                               ("/gcs", gcs, gcs.options)):  # fmt: skip
        args = [a for k, v in options.items() for a in ("-o", f"{k}={v}")]
        shoal("fs", "mount", at, store.uri, *args, home=home)  # makes its mount point
    listed = shoal("fs", "ls", "-R", "/", home=home).stdout
    sections = {b.split(":\n")[0]: b.split(":\n")[1].split() for b in listed.strip().split("\n\n")}
    assert {"az", "gcs", "s3"} <= set(sections["/"])
    assert sections["/s3/labels"][-1] == "cat.txt"
    assert sections["/az/images"][-1] == "cat.jpg"
    assert sections["/gcs/models"][-1] == "cat.ckpt"
    for path, content in (("/s3/labels/cat.txt", "from s3"), ("/az/images/cat.jpg", "from azure"),
                          ("/gcs/models/cat.ckpt", "from gcs")):  # fmt: skip
        assert shoal("fs", "cat", path, home=home).stdout == content

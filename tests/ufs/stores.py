"""UFS stores for engine tests, each with a way to change it behind Shoal's back: a local
directory, a bucket prefix on moto's S3 server over HTTP, and a container prefix on Azurite."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from cli.bench.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from cli.bench.gcsserver import GCSServer
from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server, s3_client

CREDS = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}


@contextmanager
def small_filesystem(path: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (made here) for a store that fills up (CI runs as
    root), unmounted after; only this mount is touched."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "shoal-test",
                    str(path)], check=True)  # fmt: skip
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=True)  # busy: detached now


def new_bucket(server: S3Server) -> str:
    """An empty bucket of its own on ``server``."""
    name = f"shoal-{uuid.uuid4().hex[:12]}"
    s3_client(server.endpoint).create_bucket(Bucket=name)
    return name


class Store(Protocol):
    uri: str
    options: dict[str, str]

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def keys(self) -> set[str]: ...
    def delete(self, key: str) -> None: ...
    def xattrs(self, key: str) -> dict[str, bytes]: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root, self.uri = root, str(root)
        self.options: dict[str, str] = {}

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def keys(self) -> set[str]:
        """Files and directories, as relative paths (directories end with /)."""
        out = set()
        for path in self.root.rglob("*"):
            rel = str(path.relative_to(self.root))
            out.add(rel + "/" if path.is_dir() else rel)
        return out

    def delete(self, key: str) -> None:
        (self.root / key).unlink()

    def xattrs(self, key: str) -> dict[str, bytes]:
        """The user.* extended attributes the store's file holds."""
        path = self.root / key
        return {n: os.getxattr(path, n) for n in os.listxattr(path) if n.startswith("user.")}


class S3Store:
    def __init__(self, server: S3Server) -> None:
        self.bucket = f"sync-{uuid.uuid4().hex[:10]}"
        self.client = s3_client(server.endpoint)
        self.client.create_bucket(Bucket=self.bucket)
        self.uri = f"s3://{self.bucket}/ds"
        self.options = {
            "endpoint": server.endpoint, "path_style": "true", "region": "us-east-1",
            "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
        }  # fmt: skip

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"ds/{key}", Body=data)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"ds/{key}")["Body"].read()

    def keys(self) -> set[str]:
        """Object keys below the prefix (directory markers end with /)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="ds/"
        )
        return {o["Key"][3:] for page in pages for o in page.get("Contents", ())}

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"ds/{key}")

    def metadata(self, key: str) -> dict[str, str]:
        """The object's user metadata (x-amz-meta-*, without the prefix)."""
        return dict(self.client.head_object(Bucket=self.bucket, Key=f"ds/{key}")["Metadata"])

    def put_with_metadata(self, key: str, data: bytes, meta: dict[str, str]) -> None:
        """An object with user metadata, as s3fs-fuse writes one."""
        self.client.put_object(Bucket=self.bucket, Key=f"ds/{key}", Body=data, Metadata=meta)

    def xattrs(self, key: str) -> dict[str, bytes]:
        """The object's x-amz-meta-xattr header decoded as s3fs-fuse writes it (URL-encoded
        JSON of base64 values), independently of Shoal's own decoder."""
        head = self.client.head_object(Bucket=self.bucket, Key=f"ds/{key}")
        header = head["Metadata"].get("xattr")
        if header is None:
            return {}
        return {k: base64.b64decode(v) for k, v in json.loads(unquote(header)).items()}


AZURE_CREDS = {"account_key": ACCOUNT_KEY}


def azure_container(server: Azurite) -> Any:
    """A new empty container of its own on ``server`` (an SDK ContainerClient)."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        server.endpoint, credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY}
    )
    return service.create_container(f"shoal-{uuid.uuid4().hex[:12]}")


class AzureStore:
    def __init__(self, server: Azurite) -> None:
        self.client = azure_container(server)
        self.uri = f"az://{self.client.container_name}/ds"
        self.options = {**server.options, **AZURE_CREDS}

    def put(self, key: str, data: bytes) -> None:
        self.client.upload_blob(f"ds/{key}", data, overwrite=True)

    def get(self, key: str) -> bytes:
        return bytes(self.client.download_blob(f"ds/{key}").readall())

    def keys(self) -> set[str]:
        """Blob names below the prefix (directory markers end with /)."""
        return {b.name[3:] for b in self.client.list_blobs(name_starts_with="ds/")}

    def delete(self, key: str) -> None:
        self.client.delete_blob(f"ds/{key}")

    def metadata(self, key: str) -> dict[str, str]:
        """The blob's user metadata."""
        return dict(self.client.get_blob_client(f"ds/{key}").get_blob_properties().metadata)

    def put_with_metadata(self, key: str, data: bytes, meta: dict[str, str]) -> None:
        """A blob with user metadata (the names S3's x-amz-meta-* have)."""
        self.client.upload_blob(f"ds/{key}", data, metadata=meta, overwrite=True)

    def xattrs(self, key: str) -> dict[str, bytes]:
        """The blob's xattr metadata decoded as s3fs-fuse's header is (URL-encoded JSON of
        base64 values), independently of Shoal's own decoder."""
        header = self.client.get_blob_client(f"ds/{key}").get_blob_properties().metadata
        if "xattr" not in header:
            return {}
        return {k: base64.b64decode(v) for k, v in json.loads(unquote(header["xattr"])).items()}


class GCSStore:
    """A bucket prefix on the GCS emulator, changed through the google-cloud-storage client
    directly (not through Shoal's connector)."""

    def __init__(self, server: GCSServer) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.client = storage.Client(
            project="shoal", credentials=AnonymousCredentials(),
            client_options={"api_endpoint": server.endpoint},
        )  # fmt: skip
        self.bucket = self.client.bucket(server.create_bucket())
        self.uri = f"gs://{self.bucket.name}/ds"
        self.options = {"endpoint": server.endpoint}

    def put(self, key: str, data: bytes) -> None:
        self.bucket.blob(f"ds/{key}").upload_from_string(data)

    def get(self, key: str) -> bytes:
        return bytes(self.bucket.blob(f"ds/{key}").download_as_bytes())

    def keys(self) -> set[str]:
        """Object names below the prefix (directory markers end with /)."""
        return {b.name[3:] for b in self.client.list_blobs(self.bucket, prefix="ds/")}

    def delete(self, key: str) -> None:
        self.bucket.delete_blob(f"ds/{key}")

    def metadata(self, key: str) -> dict[str, str]:
        """The object's custom metadata."""
        blob = self.bucket.get_blob(f"ds/{key}")
        assert blob is not None, key
        return dict(blob.metadata or {})

    def put_with_metadata(self, key: str, data: bytes, meta: dict[str, str]) -> None:
        """An object with custom metadata (the names S3's x-amz-meta-* have)."""
        blob = self.bucket.blob(f"ds/{key}")
        blob.metadata = meta
        blob.upload_from_string(data)

    def xattrs(self, key: str) -> dict[str, bytes]:
        """The object's xattr metadata decoded as s3fs-fuse writes it (URL-encoded JSON of
        base64 values), independently of Shoal's own decoder."""
        blob = self.bucket.get_blob(f"ds/{key}")
        header = (blob.metadata or {}).get("xattr") if blob is not None else None
        if not header:
            return {}
        return {k: base64.b64decode(v) for k, v in json.loads(unquote(header)).items()}

"""Opening a connector from a UFS URI: ``/path`` or ``file:///path`` (local), ``s3://bucket/prefix``,
``az://container/prefix`` (Azure Blob), ``gs://bucket/prefix`` (Google Cloud Storage)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from ufs.base import NameRules, UnderFS
from ufs.errors import UfsError
from ufs.local import LocalUnderFS

SCHEMES = ("file", "s3", "az", "gs")


def open_ufs(
    uri: str, options: Mapping[str, str] | None = None, credentials: Mapping[str, str] | None = None
) -> UnderFS:
    """The connector for ``uri``, checked (root or bucket reachable); raises UfsError."""
    options = options or {}
    if uri.startswith("/") or uri.startswith("file://"):
        if options:
            raise UfsError(f"local UFS {uri} takes no mount options (got {', '.join(options)})")
        return LocalUnderFS(unquote(urlsplit(uri).path) if uri.startswith("file://") else uri)
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        from ufs.s3 import S3Options, S3UnderFS  # boto3 loads only when an S3 mount exists

        if not parts.netloc:
            raise UfsError(f"{uri}: no bucket; write s3://BUCKET[/PREFIX]")
        ufs = S3UnderFS(parts.netloc, unquote(parts.path), S3Options.parse(options), credentials)
        ufs.check()
        return ufs
    if parts.scheme == "az":
        from ufs.azure import AzureUnderFS  # the SDK loads only when an az:// mount exists
        from ufs.azureoptions import AzureOptions

        if not parts.netloc:
            raise UfsError(f"{uri}: no container; write az://CONTAINER[/PREFIX]")
        store = AzureUnderFS(
            parts.netloc, unquote(parts.path), AzureOptions.parse(options), credentials
        )
        store.check()
        return store
    if parts.scheme == "gs":
        from ufs.gcs import GCSUnderFS  # the client loads only when a gs:// mount exists
        from ufs.gcsoptions import GCSOptions

        if not parts.netloc:
            raise UfsError(f"{uri}: no bucket; write gs://BUCKET[/PREFIX]")
        gcs = GCSUnderFS(parts.netloc, unquote(parts.path), GCSOptions.parse(options), credentials)
        gcs.check()
        return gcs
    raise UfsError(
        f"{uri}: unsupported UFS URI; use an absolute path, file:///PATH, s3://BUCKET[/PREFIX],"
        " az://CONTAINER[/PREFIX] or gs://BUCKET[/PREFIX]"
    )


def reads_locally(uri: str) -> bool:
    """Whether the store at ``uri`` is read by system calls on a local path (a local disk, an
    NFS or SMB mount) rather than by requests over a network connection: such a read is
    cheaper than a hand-over to another thread, and is made in the reader's own."""
    return uri.startswith("/") or uri.startswith("file://")


def name_rules(uri: str) -> NameRules:
    """What names the store at ``uri`` can hold, without opening it (no request is sent: a
    create below a mount whose store is down is still checked); raises UfsError for a URI
    ``open_ufs`` would refuse."""
    if uri.startswith("file://"):
        return LocalUnderFS.rules_at(unquote(urlsplit(uri).path))
    if uri.startswith("/"):
        return LocalUnderFS.rules_at(uri)
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        from ufs.s3 import S3UnderFS

        return S3UnderFS.rules_for(unquote(parts.path))
    if parts.scheme == "az":
        from ufs.azure import AzureUnderFS

        return AzureUnderFS.rules_for(unquote(parts.path))
    if parts.scheme == "gs":
        from ufs.gcs import GCSUnderFS

        return GCSUnderFS.rules_for(unquote(parts.path))
    raise UfsError(f"{uri}: unsupported UFS URI")

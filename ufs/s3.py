"""S3 and S3-compatible stores (MinIO, Ceph RGW, GCS in interoperability mode) through boto3.

A UFS path maps to the key ``<prefix>/<path>``. Directories exist two ways and both are
understood: as ``dir/`` marker objects (what ``mkdir`` writes, and what most tools write) and as
implicit common prefixes of deeper keys. Retries are botocore's "standard" mode: exponential
backoff with jitter on throttling (503 SlowDown), 5xx, and connection errors and timeouts, up to
``max_attempts``; what cannot succeed by retrying (403, a missing bucket) fails at once with an
error saying what to fix. Credentials come from the mount options if given, else from the
environment, a named ``profile`` or any source boto3 knows; they are never logged or stored in
this object's repr.
"""

from __future__ import annotations

import errno
import io
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from ufs.base import UfsStatus, UnderFS, join, normalize
from ufs.errors import (
    UfsAccessDenied,
    UfsBucketMissing,
    UfsError,
    UfsInvalidPath,
    UfsIsADirectory,
    UfsNoSpace,
    UfsNotADirectory,
    UfsNotEmpty,
    UfsNotFound,
    UfsUnavailable,
)
from ufs.s3xattrs import XATTR_META, XATTR_META_MAX, decode_xattrs, encode_xattrs

STREAM_CHUNK = 128 * 1024  # what a streamed read hands on at a time (a FUSE read's size)
SECRET_OPTIONS = frozenset({"access_key", "secret_key", "session_token"})


@dataclass(frozen=True)
class S3Options:
    endpoint: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO; None: AWS
    region: str | None = None
    path_style: bool = False  # bucket in the path, not the host name (MinIO, Ceph RGW)
    profile: str | None = None
    max_attempts: int = 5  # per request, first try included
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    pool_size: int = 64  # connections; parallel reads need one each
    multipart_threshold: int = 64 << 20
    multipart_chunk: int = 16 << 20
    upload_concurrency: int = 4
    page_size: int = 1000  # keys per LIST request

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> S3Options:
        """From mount options (strings); unknown keys are an error naming the key."""
        known = {f for f in cls.__dataclass_fields__}
        values: dict[str, Any] = {}
        for key, raw in options.items():
            if key in SECRET_OPTIONS:
                continue
            if key not in known:
                raise UfsError(f"unknown S3 mount option {key!r}")
            current = getattr(cls, key)
            try:
                if isinstance(current, bool):
                    values[key] = str(raw).lower() in ("1", "true", "yes")
                elif isinstance(current, int):
                    values[key] = int(raw)
                elif isinstance(current, float):
                    values[key] = float(raw)
                else:
                    values[key] = str(raw)
            except ValueError:
                raise UfsError(f"S3 mount option {key}: {raw!r} is not a valid value") from None
        return cls(**values)


_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {
    "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "AllAccessDisabled",
}  # fmt: skip


class S3UnderFS(UnderFS):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        options: S3Options | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = normalize(prefix)
        self.options = options = options or S3Options()
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        creds = credentials or {}
        session = boto3.session.Session(
            aws_access_key_id=creds.get("access_key"),
            aws_secret_access_key=creds.get("secret_key"),
            aws_session_token=creds.get("session_token"),
            region_name=options.region,
            profile_name=options.profile,
        )
        config = Config(
            retries={"total_max_attempts": options.max_attempts, "mode": "standard"},
            connect_timeout=options.connect_timeout_s,
            read_timeout=options.read_timeout_s,
            max_pool_connections=options.pool_size,
            s3={"addressing_style": "path" if options.path_style else "auto"},
            signature_version="s3v4",
        )
        self.client = session.client("s3", endpoint_url=options.endpoint, config=config)
        self._transfer = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunk,
            max_concurrency=options.upload_concurrency,
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3UnderFS({self.uri!r}, endpoint={self.options.endpoint!r})"

    # -- keys and errors ---------------------------------------------------------------------

    def _key(self, rel: str) -> str:
        return join(self.prefix, rel) if rel else self.prefix

    def _dir_prefix(self, rel: str) -> str:
        key = self._key(rel)
        return f"{key}/" if key else ""

    @contextmanager
    def _errors(self, rel: str) -> Iterator[None]:
        where = f"{self.uri}: {rel or '/'}"
        try:
            yield
        except UfsError:
            raise
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            message = error.get("Message") or code
            if code == "NoSuchBucket":
                raise UfsBucketMissing(
                    f"{self.uri}: bucket {self.bucket!r} does not exist at"
                    f" {self.options.endpoint or 'AWS'}; create it or fix the URI"
                ) from None
            if code in _DENIED or status == "403":
                raise UfsAccessDenied(
                    f"{where}: access denied ({code}); check the credentials (access_key,"
                    " secret_key, session_token or profile) and the bucket policy"
                ) from None
            if code in _NOT_FOUND or status == "404":
                raise UfsNotFound(f"{where}: no such file or directory") from None
            if code == "InvalidRange":
                raise UfsNotFound(f"{where}: range not satisfiable") from None
            if status.startswith("5") or code in ("SlowDown", "Throttling", "RequestTimeout"):
                raise UfsUnavailable(
                    f"{where}: the store kept failing after {self.options.max_attempts}"
                    f" attempts ({code or status}: {message})"
                ) from None
            raise UfsError(f"{where}: {code or status}: {message}") from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionClosedError,
        ) as exc:
            raise UfsUnavailable(
                f"{where}: endpoint {self.options.endpoint or 'AWS'} unreachable after"
                f" {self.options.max_attempts} attempts ({type(exc).__name__})"
            ) from None
        except botocore.exceptions.NoCredentialsError:
            raise UfsAccessDenied(
                f"{where}: no credentials: give access_key and secret_key, a profile, or"
                " set them in the environment"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise UfsError(f"{where}: {exc}") from None
        except OSError as exc:  # a socket botocore did not wrap, or a write's source failed
            network = isinstance(exc, (ConnectionError, TimeoutError)) or exc.errno in (
                errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
            )  # fmt: skip
            cls = UfsUnavailable if network else UfsError
            raise cls(f"{where}: {exc.strerror or exc}") from exc

    def check(self) -> None:
        """Fails early, with the reason, if the bucket is missing or refuses these credentials."""
        with self._errors(""):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404:  # HEAD has no body, so no error code to tell a bucket apart
                    raise UfsBucketMissing(
                        f"{self.uri}: bucket {self.bucket!r} does not exist at"
                        f" {self.options.endpoint or 'AWS'}; create it or fix the URI"
                    ) from None
                raise

    # -- reading -----------------------------------------------------------------------------

    def stat(self, path: str) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            return UfsStatus("", True, 0, 0, "")
        with self._errors(rel):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
                return _file_status(rel, head["ContentLength"], head["LastModified"], head["ETag"])
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in _NOT_FOUND:
                    raise
            reply = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._dir_prefix(rel), MaxKeys=1
            )
            if reply.get("KeyCount", 0) > 0:
                return UfsStatus(rel, True, 0, 0, "")
        raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")

    def list(self, path: str) -> Iterator[UfsStatus]:
        rel = normalize(path)
        return self._list(rel)

    def _list(self, rel: str) -> Iterator[UfsStatus]:
        prefix = self._dir_prefix(rel)
        cut = len(prefix)
        found = False
        with self._errors(rel):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=prefix,
                Delimiter="/",
                PaginationConfig={"PageSize": self.options.page_size},
            )
            for page in pages:
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][cut:-1]
                    if name:
                        found = True
                        yield UfsStatus(join(rel, name), True, 0, 0, "")
                for obj in page.get("Contents", ()):
                    found = True
                    name = obj["Key"][cut:]
                    if not name:  # the directory's own marker
                        continue
                    yield _file_status(
                        join(rel, name), obj["Size"], obj["LastModified"], obj["ETag"]
                    )
        if not found and rel and not self.stat(rel).is_dir:
            raise UfsNotADirectory(f"{self.uri}: {rel} is a file")

    def read(self, path: str, offset: int, length: int) -> bytes:
        return b"".join(self.read_stream(path, offset, length))

    def read_stream(self, path: str, offset: int, length: int) -> Iterator[bytes]:
        rel = normalize(path)
        if length <= 0:
            return
        with self._errors(rel):
            try:
                reply = self.client.get_object(
                    Bucket=self.bucket,
                    Key=self._key(rel),
                    Range=f"bytes={offset}-{offset + length - 1}",
                )
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) == "InvalidRange":
                    return  # at or past the end of the object
                raise
            body = reply["Body"]
            try:
                # The body checks its length against Content-Length when it ends: a
                # connection cut short is an error, never a short block.
                while chunk := body.read(STREAM_CHUNK):
                    yield chunk
            finally:
                body.close()

    # -- writing -----------------------------------------------------------------------------

    def write(self, path: str, source: BinaryIO) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        with self._errors(rel):
            # Managed transfer: one PUT below the threshold, else a multipart upload of
            # multipart_chunk parts read from the stream as they go (bounded memory).
            self.client.upload_fileobj(
                _FullReads(source),  # type: ignore[arg-type]
                self.bucket,
                self._key(rel),
                Config=self._transfer,
            )
        return self.stat(rel)

    def delete(self, path: str) -> None:
        rel = normalize(path)
        status = self.stat(rel)  # S3 deletes a missing key silently; the contract does not
        if status.is_dir:
            raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
        with self._errors(rel):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))
            self._keep_parent(rel)

    def _keep_parent(self, rel: str) -> None:
        """After the last key under an implicit directory went, writes its marker: a directory
        does not vanish because its last file was deleted or moved (as on a file system)."""
        parent = rel.rpartition("/")[0]
        if not parent:
            return
        prefix = self._dir_prefix(parent)
        reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        if not reply.get("KeyCount", 0):
            self.client.put_object(Bucket=self.bucket, Key=prefix, Body=b"")

    def mkdir(self, path: str) -> None:
        rel = normalize(path)
        if not rel:
            return
        with self._errors(rel):
            self.client.put_object(Bucket=self.bucket, Key=self._dir_prefix(rel), Body=b"")

    def rmdir(self, path: str) -> None:
        rel = normalize(path)
        if not rel:
            raise UfsInvalidPath(f"{self.uri}: the root cannot be removed")
        prefix = self._dir_prefix(rel)
        with self._errors(rel):
            reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=2)
            keys = [o["Key"] for o in reply.get("Contents", ())]
            if any(k != prefix for k in keys):
                raise UfsNotEmpty(f"{self.uri}: {rel} is not empty")
            if not keys:
                raise UfsNotFound(f"{self.uri}: {rel}: no such directory")
            self.client.delete_object(Bucket=self.bucket, Key=prefix)

    def rename(self, src: str, dst: str) -> None:
        a, b = normalize(src), normalize(dst)
        if self.stat(a).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
        with self._errors(a):
            # Copy then delete: not atomic. The managed copy goes multipart for large objects.
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(a)},
                self.bucket,
                self._key(b),
                Config=self._transfer,
            )
            self.client.delete_object(Bucket=self.bucket, Key=self._key(a))
            self._keep_parent(a)

    # -- extended attributes -----------------------------------------------------------------

    def check_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        size = len(XATTR_META) + len(encode_xattrs(xattrs))
        if xattrs and size > XATTR_META_MAX:
            raise UfsNoSpace(
                f"{self.uri}: {normalize(path) or '/'}: extended attributes take {size} bytes of"
                f" object metadata encoded, over the {XATTR_META_MAX} bytes S3 leaves them"
                " (2 KB per object)"
            )

    def _meta_key(self, rel: str) -> str | None:
        """The key whose metadata holds ``rel``'s attributes: the object, or a directory's
        marker; None for a directory without one (an implicit directory)."""
        if self.stat(rel).is_dir:
            marker = self._dir_prefix(rel)
            reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=marker, MaxKeys=1)
            first = [o["Key"] for o in reply.get("Contents", ())][:1]
            return marker if first == [marker] else None
        return self._key(rel)

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        rel = normalize(path)
        with self._errors(rel):
            key = self._meta_key(rel) if rel else None
            if key is None:
                return {}
            meta = self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {})
        return decode_xattrs(meta.get(XATTR_META, ""))

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        rel = normalize(path)
        if not rel:
            return  # the bucket's root has no object to hold them: the namespace keeps them
        self.check_xattrs(rel, xattrs)
        with self._errors(rel):
            key = self._meta_key(rel)
            if key is None:  # an implicit directory gets its marker, as s3fs makes one
                key = self._dir_prefix(rel)
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
            head = self.client.head_object(Bucket=self.bucket, Key=key)
            meta = dict(head.get("Metadata", {}))
            meta.pop(XATTR_META, None)
            if xattrs:
                meta[XATTR_META] = encode_xattrs(xattrs)
            extra: dict[str, Any] = {"Metadata": meta, "MetadataDirective": "REPLACE"}
            if head.get("ContentType"):
                extra["ContentType"] = head["ContentType"]
            # S3 changes an object's metadata only by copying it onto itself (the managed copy
            # goes multipart above 5 GB).
            self.client.copy(
                {"Bucket": self.bucket, "Key": key}, self.bucket, key, ExtraArgs=extra,
                Config=self._transfer,
            )  # fmt: skip

    def close(self) -> None:
        self.client.close()


class _FullReads(io.RawIOBase):
    """``read(n)`` returns n bytes unless the source ends: the transfer manager decides between
    one PUT and a multipart upload by reading ``multipart_threshold`` bytes once, and a source
    that returns short reads (a pipe, a socket, a raw file) would be taken for a small one."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.source.read()
        parts = []
        while size > 0:
            chunk = self.source.read(size)
            if not chunk:
                break
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)


def _file_status(rel: str, size: int, modified: Any, etag: str) -> UfsStatus:
    mtime_ns = int(modified.timestamp() * 1_000_000_000)
    return UfsStatus(rel, False, size, mtime_ns, f"{size}-{etag.strip(chr(34))}")

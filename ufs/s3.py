"""S3 and S3-compatible stores (MinIO, Ceph RGW, GCS in interoperability mode) through boto3.

A UFS path maps to the key ``<prefix>/<path>``. Directories exist two ways and both are
understood: as ``dir/`` marker objects (what ``mkdir`` writes, and what most tools write) and as
implicit common prefixes of deeper keys. Retries are botocore's "standard" mode: exponential
backoff with jitter on throttling (503 SlowDown), 5xx, and connection errors and timeouts, up to
``max_attempts``; what cannot succeed by retrying (403, a missing bucket) fails at once with an
error saying what to fix. Credentials come from the mount options if given, else from the
environment, a named ``profile`` or any source boto3 knows; they are never logged or stored in
this object's repr.

POSIX attributes live in user metadata under the names s3fs-fuse and rclone use, so a bucket
shared with them looks the same through each: ``x-amz-meta-mode`` (the decimal st_mode, file
type bits included, as s3fs writes it), ``x-amz-meta-uid``, ``x-amz-meta-gid`` (decimal) and
``x-amz-meta-mtime`` (seconds since the epoch, with a fraction of up to nine digits). They are
written with every upload and directory marker, changed by a copy of the object onto itself
(MetadataDirective REPLACE), and read back by ``stat`` (its HEAD) and by every GET (its reply
carries them: ``read_stream``'s ``on_status``). LIST returns no metadata, and a HEAD costs a
store as much as a GET, so ``list`` HEADs no object that holds bytes: their statuses say
``attrs_known=False``, and the first GET (or a stat) completes them. Only what a listing cannot
do without is HEADed, in parallel: directory markers (their mode decides who may enter) and
empty objects (a special file's type is in its metadata alone). The mount option
``posix_metadata=false`` gives metadata up altogether (a listing costs one request per 1,000
keys, and every object gets the engine's defaults). What is missing or unreadable is None.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

import boto3
import botocore.exceptions
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from ufs.base import OnStatus, UfsAttrs, UfsStatus, UnderFS, join, normalize
from ufs.errors import (
    UfsBucketMissing,
    UfsInvalidPath,
    UfsIsADirectory,
    UfsNoSpace,
    UfsNotADirectory,
    UfsNotEmpty,
    UfsNotFound,
)
from ufs.objectkeys import ObjectKeys
from ufs.s3errors import NOT_FOUND, s3_errors
from ufs.s3meta import (
    dir_status,
    file_status,
    posix_metadata,
    replaced_metadata,
    reply_status,
    special_metadata,
)
from ufs.s3multipart import MultipartWrites
from ufs.s3options import S3Options
from ufs.s3parts import UploadSlots, checksum_args
from ufs.s3stream import FullReads
from ufs.s3time import parse_timestamp
from ufs.s3xattrs import XATTR_META, XATTR_META_MAX, decode_xattrs, encode_xattrs

STREAM_CHUNK = 128 * 1024  # what a streamed read hands on at a time (a FUSE read's size)


# A listed entry: (its UFS path, the key to HEAD, its listing; None for a directory).
_Listed = tuple[str, str, Mapping[str, Any] | None]


class S3UnderFS(ObjectKeys, MultipartWrites, UnderFS):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        options: S3Options | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = normalize(prefix)
        self.rules = self.rules_for(self.prefix)
        self.options = options = options or S3Options()
        self.lists_attrs = not options.posix_metadata  # a listing reads no object's metadata
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        creds = credentials or {}
        core = botocore.session.get_session()
        # A timestamp per GET and per listed object, parsed on the daemon's GIL (ufs/s3time.py)
        parsers = core.get_component("response_parser_factory")
        parsers.set_parser_defaults(timestamp_parser=parse_timestamp)
        session = boto3.session.Session(
            botocore_session=core,
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
        # A copy (a metadata change onto itself, a rename, a link) asks for a checksum of the
        # whole new object: else a store may give it the source's, which for a multipart
        # source is a checksum of the parts' checksums, and whole GETs then fail to verify.
        self._copy_checksum = checksum_args(self.client)
        self.slots = UploadSlots()  # the uploads of writes in progress (ufs/s3parts.py)
        self._lock = threading.Lock()
        self._head_pool: ThreadPoolExecutor | None = None  # a listing's HEADs

    def __repr__(self) -> str:
        return f"S3UnderFS({self.uri!r}, endpoint={self.options.endpoint!r})"

    # -- keys and errors ---------------------------------------------------------------------

    def _errors(self, rel: str) -> AbstractContextManager[None]:
        return s3_errors(self.uri, self.bucket, self.options, rel)

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
                if status == 403:
                    # Nor to tell a wrong key (InvalidAccessKeyId) from a wrong secret
                    # (SignatureDoesNotMatch) or a policy: a LIST's answer has the code.
                    self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
                raise

    # -- reading -----------------------------------------------------------------------------

    def stat(self, path: str) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            return UfsStatus("", True, 0, 0, "")
        if not _is_utf8(rel):  # no key can be named so: nothing to ask the store
            raise UfsNotFound(f"{self.uri}: {rel!r}: no such file or directory")
        with self._errors(rel):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
                return file_status(
                    rel, head["ContentLength"], head["LastModified"], head["ETag"],
                    head.get("Metadata"),
                )  # fmt: skip
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in NOT_FOUND:
                    raise
            marker = self._dir_prefix(rel)
            reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=marker, MaxKeys=1)
            if reply.get("KeyCount", 0) > 0:
                contents = reply.get("Contents", [])
                first = contents[0].get("Key") if contents else None
                # A marker sorts first below its prefix: without one there is no metadata.
                meta = self._metadata(marker) if first == marker else None
                return dir_status(rel, meta)
        raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")

    def _metadata(self, key: str) -> dict[str, str] | None:
        """The user metadata of object ``key`` (a HEAD); None if it is not there."""
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {}))
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND:
                return None
            raise

    def _heads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._head_pool is None:
                self._head_pool = ThreadPoolExecutor(
                    max(1, min(32, self.options.pool_size)), thread_name_prefix="s3-head"
                )
            return self._head_pool

    def list(self, path: str) -> Iterator[UfsStatus]:
        rel = normalize(path)
        return self._list(rel)

    def _list(self, rel: str) -> Iterator[UfsStatus]:
        if not _is_utf8(rel):
            raise UfsNotFound(f"{self.uri}: {rel!r}: no such directory")
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
                # (UFS path, its key to HEAD, the object's listing, or None for a directory)
                found_here: builtins.list[_Listed] = []
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][cut:-1]
                    if name:
                        found_here.append((join(rel, name), common["Prefix"], None))
                for obj in page.get("Contents", ()):
                    found = True
                    name = obj["Key"][cut:]
                    if name:  # else the directory's own marker
                        found_here.append((join(rel, name), obj["Key"], obj))
                found = found or bool(found_here)
                yield from self._statuses(found_here)
        if not found and rel and not self.stat(rel).is_dir:
            raise UfsNotADirectory(f"{self.uri}: {rel} is a file")

    def _statuses(self, items: builtins.list[_Listed]) -> Iterator[UfsStatus]:
        """A page's entries; directories' markers and empty objects HEADed in parallel."""
        posix = self.options.posix_metadata
        # An object with bytes is not HEADed: its first GET brings its metadata. An empty
        # object may be a special file, whose type only its metadata holds.
        wanted = [
            (posix and obj is None) or (obj is not None and obj["Size"] == 0)
            for _rel, _key, obj in items
        ]
        if any(wanted):
            heads = iter(
                self._heads().map(
                    self._metadata,
                    [key for (_r, key, _o), w in zip(items, wanted, strict=True) if w],
                )
            )
            metas: Iterator[dict[str, str] | None] = (next(heads) if w else None for w in wanted)
        else:
            metas = iter([None] * len(items))
        for (path, _key, obj), meta in zip(items, metas, strict=True):
            if obj is None:
                yield dir_status(path, meta)
            else:
                known = not posix or obj["Size"] == 0
                yield file_status(
                    path, obj["Size"], obj["LastModified"], obj["ETag"], meta, attrs_known=known
                )

    def read(self, path: str, offset: int, length: int) -> bytes:
        return b"".join(self.read_stream(path, offset, length))

    def read_stream(
        self, path: str, offset: int, length: int, on_status: OnStatus | None = None
    ) -> Iterator[bytes]:
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
            if on_status is not None:
                on_status(reply_status(rel, reply, self.options.posix_metadata))
            try:
                # The body checks its length against Content-Length when it ends: a
                # connection cut short is an error, never a short block.
                while chunk := body.read(STREAM_CHUNK):
                    yield chunk
            finally:
                body.close()

    # -- writing -----------------------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        self.rules.check(rel)
        meta = posix_metadata(attrs, directory=False)
        with self._errors(rel):
            # Managed transfer: one PUT below the threshold, else a multipart upload of
            # multipart_chunk parts read from the stream as they go (bounded memory).
            self.client.upload_fileobj(
                FullReads(source),  # type: ignore[arg-type]
                self.bucket,
                self._key(rel),
                ExtraArgs={"Metadata": meta} if meta else None,
                Config=self._transfer,
            )
        return self.stat(rel)

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        rel = normalize(path)
        if not rel and not self.prefix:
            return self.stat(rel)  # a bucket's root has no object to hold them
        with self._errors(rel):
            key = self._key(rel)
            try:
                head: Mapping[str, Any] | None = self.client.head_object(
                    Bucket=self.bucket, Key=key
                )
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in NOT_FOUND:
                    raise
                head = None
            if head is None:  # a directory: its marker holds them (written if it had none)
                if not self.stat(rel).is_dir:
                    raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")
                marker = self._dir_prefix(rel)
                meta = self._metadata(marker) or {}
                meta.update(posix_metadata(attrs, directory=True))
                self.client.put_object(Bucket=self.bucket, Key=marker, Body=b"", Metadata=meta)
            else:  # a copy onto itself: new metadata, the same bytes
                meta = replaced_metadata(head.get("Metadata", {}), attrs)
                self._copy_onto_itself(key, meta, head)
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

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        rel = normalize(path)
        if not rel:
            return
        self.rules.check(rel, is_dir=True)
        meta = posix_metadata(attrs, directory=True)
        with self._errors(rel):
            marker = self._dir_prefix(rel)
            if self._metadata(marker) is not None:
                return  # it exists: a new marker would drop its attributes and xattrs
            self.client.put_object(Bucket=self.bucket, Key=marker, Body=b"", Metadata=meta)

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
        self.rules.check(b)
        if self.stat(a).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
        with self._errors(a):
            # Copy then delete: not atomic. The managed copy goes multipart for large objects.
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(a)},
                self.bucket,
                self._key(b),
                ExtraArgs=dict(self._copy_checksum),
                Config=self._transfer,
            )
            self.client.delete_object(Bucket=self.bucket, Key=self._key(a))
            self._keep_parent(a)

    def link(self, src: str, dst: str) -> UfsStatus:
        """A copy: S3 has no links, so ``dst`` is an independent object (docs/mount.md)."""
        a, b = normalize(src), normalize(dst)
        if self.stat(a).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
        with self._errors(a):
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(a)},
                self.bucket,
                self._key(b),
                ExtraArgs=dict(self._copy_checksum),
                Config=self._transfer,
            )
        return self.stat(b)

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        """An empty object whose metadata carries the type, as s3fs-fuse writes one."""
        rel = normalize(path)
        meta = special_metadata(mode, attrs)
        if rdev:
            meta["rdev"] = str(rdev)
        with self._errors(rel):
            self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=b"", Metadata=meta)
        return self.stat(rel)

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
            self._copy_onto_itself(key, meta, head)

    def _copy_onto_itself(self, key: str, meta: dict[str, str], head: Mapping[str, Any]) -> None:
        """S3 changes an object's metadata only by copying it onto itself (the managed copy
        goes multipart above multipart_threshold)."""
        extra = {"Metadata": meta, "MetadataDirective": "REPLACE", **self._copy_checksum}
        if head.get("ContentType"):
            extra["ContentType"] = head["ContentType"]
        self.client.copy(
            {"Bucket": self.bucket, "Key": key}, self.bucket, key,
            ExtraArgs=extra, Config=self._transfer,
        )  # fmt: skip

    def close(self) -> None:
        with self._lock:
            pool, self._head_pool = self._head_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.client.close()


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

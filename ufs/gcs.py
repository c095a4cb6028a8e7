"""Google Cloud Storage through the official google-cloud-storage client (``gs://BUCKET/PREFIX``).

A UFS path maps to the object ``<prefix>/<path>``. Directories exist two ways, as on S3 (ufs/s3.py)
and as gcsfuse and the Cloud console see them: ``dir/`` marker objects (what ``mkdir`` writes) and
implicit prefixes of deeper objects. POSIX attributes and extended attributes live in the
object's custom metadata under the names s3fs-fuse uses (ufs/s3meta.py, ufs/s3xattrs.py), so an
object copied between the stores keeps them; GCS lists an object's metadata with it, so a
listing asks nothing more of its files (only of its directories' markers). A write above
``resumable_threshold`` is a resumable upload of ``resumable_chunk`` requests, cancelled if it
fails: GCS makes no object of an upload that was never finalised, and the old one stays.
Retries and errors: ufs/gcserrors.py; credentials and the endpoint: ufs/gcsclient.py.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, BinaryIO
from urllib.parse import quote

from google.api_core import exceptions as gexc
from google.cloud.storage import Blob

from ufs.base import OnStatus, UfsAttrs, UfsStatus, UnderFS, join, normalize
from ufs.errors import (
    UfsBucketMissing,
    UfsInvalidPath,
    UfsIsADirectory,
    UfsNoSpace,
    UfsNotADirectory,
    UfsNotEmpty,
    UfsNotFound,
    UfsUnavailable,
)
from ufs.gcsclient import make_client
from ufs.gcserrors import attempts, gcs_errors, missing_bucket
from ufs.gcsoptions import GCSOptions
from ufs.gcsupload import resumable_upload
from ufs.objectkeys import ObjectKeys
from ufs.s3meta import dir_status, file_status, posix_metadata, replaced_metadata, special_metadata
from ufs.s3stream import FullReads
from ufs.s3xattrs import XATTR_META, decode_xattrs, encode_xattrs

STREAM_CHUNK = 128 * 1024  # what a streamed read hands on at a time (a FUSE read's size)
# GCS keeps 8 KiB of custom metadata per object; the rest is left for mode, owner and times.
XATTR_META_MAX = 6144
PUBLIC_ENDPOINT = "https://storage.googleapis.com"


class GCSUnderFS(ObjectKeys, UnderFS):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        options: GCSOptions | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.bucket_name = bucket
        self.prefix = normalize(prefix)
        self.rules = self.rules_for(self.prefix)
        self.options = options = options or GCSOptions()
        self.uri = f"gs://{bucket}/{self.prefix}" if self.prefix else f"gs://{bucket}"
        with gcs_errors(self.uri, bucket, options, ""):  # no default credentials: say so
            self.client, self.session = make_client(options, credentials or {})
        self.bucket = self.client.bucket(bucket)
        self._media = f"{(options.endpoint or PUBLIC_ENDPOINT).rstrip('/')}/download/storage/v1"
        self._timeout = (options.connect_timeout_s, options.read_timeout_s)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # a listing's marker GETs

    def __repr__(self) -> str:
        return f"GCSUnderFS({self.uri!r}, endpoint={self.options.endpoint!r})"

    # -- names, calls and errors -------------------------------------------------------------

    def _errors(self, rel: str) -> AbstractContextManager[None]:
        return gcs_errors(self.uri, self.bucket_name, self.options, rel)

    def _call(self) -> dict[str, Any]:
        """The retry policy and timeouts of one call."""
        return {"retry": attempts(self.options), "timeout": self._timeout}

    def _blob(self, key: str) -> Blob | None:
        """Object ``key`` with its metadata (one GET); None if it is not there."""
        return self.bucket.get_blob(key, **self._call())

    def _first(self, prefix: str, n: int) -> builtins.list[str]:
        """The names of the first ``n`` objects below ``prefix``."""
        found = self.client.list_blobs(self.bucket, prefix=prefix, max_results=n, **self._call())
        return [b.name for b in found]

    def check(self) -> None:
        """Fails early, with the reason, if the bucket is missing or refuses the credentials."""
        with self._errors(""):
            try:
                self.client.get_bucket(self.bucket_name, **self._call())
            except gexc.NotFound:
                endpoint = self.options.endpoint or PUBLIC_ENDPOINT
                raise UfsBucketMissing(
                    missing_bucket(self.uri, self.bucket_name, endpoint)
                ) from None

    # -- reading -----------------------------------------------------------------------------

    def stat(self, path: str) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            return UfsStatus("", True, 0, 0, "")
        if not _is_utf8(rel):  # no object can be named so: nothing to ask the store
            raise UfsNotFound(f"{self.uri}: {rel!r}: no such file or directory")
        with self._errors(rel):
            blob = self._blob(self._key(rel))
            if blob is not None:
                return _file_status(rel, blob)
            marker = self._dir_prefix(rel)
            first = self._first(marker, 1)
            if first:
                # A marker sorts first below its prefix: without one there is no metadata.
                meta = _metadata(self._blob(marker)) if first[0] == marker else None
                return dir_status(rel, meta)
        raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")

    def _markers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max(1, self.options.pool_size), thread_name_prefix="gcs-marker"
                )
            return self._pool

    def list(self, path: str) -> Iterator[UfsStatus]:
        return self._list(normalize(path))

    def _list(self, rel: str) -> Iterator[UfsStatus]:
        if not _is_utf8(rel):
            raise UfsNotFound(f"{self.uri}: {rel!r}: no such directory")
        prefix = self._dir_prefix(rel)
        cut = len(prefix)
        found = False
        with self._errors(rel):
            listing = self.client.list_blobs(
                self.bucket, prefix=prefix, delimiter="/", page_size=self.options.page_size,
                **self._call(),
            )  # fmt: skip
            for page in listing.pages:
                blobs = builtins.list(page)  # a page's prefixes are known once it is read
                dirs = [p for p in page.prefixes if p[cut:-1]]
                found = found or bool(blobs) or bool(dirs)
                yield from self._dir_statuses(rel, sorted(dirs), cut)
                for blob in blobs:
                    name = blob.name[cut:]
                    if name:  # else the directory's own marker
                        yield _file_status(join(rel, name), blob)
        if not found and rel and not self.stat(rel).is_dir:
            raise UfsNotADirectory(f"{self.uri}: {rel} is a file")

    def _dir_statuses(self, rel: str, dirs: builtins.list[str], cut: int) -> Iterator[UfsStatus]:
        """A page's directories, with their markers' metadata fetched in parallel."""
        if not self.options.posix_metadata:
            metas: Iterator[dict[str, str] | None] = iter([None] * len(dirs))
        else:
            metas = self._markers().map(lambda p: _metadata(self._blob(p)), dirs)
        for prefix, meta in zip(dirs, metas, strict=True):
            yield dir_status(join(rel, prefix[cut:-1]), meta)

    def read(self, path: str, offset: int, length: int) -> bytes:
        rel = normalize(path)
        if length <= 0:
            return b""
        with self._errors(rel):
            try:
                return bytes(
                    self.bucket.blob(self._key(rel)).download_as_bytes(
                        start=offset, end=offset + length - 1, checksum=None, raw_download=True,
                        **self._call(),
                    )
                )  # fmt: skip
            except gexc.RequestRangeNotSatisfiable:
                return b""  # at or past the end of the object

    def read_stream(
        self, path: str, offset: int, length: int, on_status: OnStatus | None = None
    ) -> Iterator[bytes]:
        # on_status is never called: a listing brings each object's metadata already.
        rel = normalize(path)
        if length <= 0:
            return
        url = f"{self._media}/b/{quote(self.bucket_name, safe='')}/o/"
        url += f"{quote(self._key(rel), safe='')}?alt=media"
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        with self._errors(rel):
            reply = attempts(self.options)(self._open_media)(url, headers)
            if reply is None:
                return
            try:
                expected = int(reply.headers.get("Content-Length", "-1"))
                got = 0
                for chunk in reply.iter_content(STREAM_CHUNK):
                    if chunk:
                        got += len(chunk)
                        yield chunk
                if 0 <= expected != got:  # a connection cut short is an error, never a short block
                    raise UfsUnavailable(
                        f"{self.uri}: {rel}: the store sent {got} of {expected} bytes"
                    )
            finally:
                reply.close()

    def _open_media(self, url: str, headers: dict[str, str]) -> Any:
        """The streamed answer to a media GET; None for a range past the end."""
        reply = self.session.get(url, headers=headers, stream=True, timeout=self._timeout)
        if reply.status_code == 416:
            reply.close()
            return None
        if reply.status_code >= 300:
            reply.content  # noqa: B018 - read: the error's message is in the body
            raise gexc.from_http_response(reply)
        return reply

    # -- writing -----------------------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        self.rules.check(rel)
        meta = posix_metadata(attrs, directory=False)
        with self._errors(rel):
            blob = self.bucket.blob(self._key(rel))
            blob.metadata = meta or None
            stream = FullReads(source)
            head = stream.read(self.options.resumable_threshold + 1)
            if len(head) <= self.options.resumable_threshold:  # one request, all or nothing
                blob.upload_from_string(
                    head, content_type="application/octet-stream", **self._call()
                )
            else:
                resumable_upload(blob, head, stream, self.session, self.options, self._timeout)
        return self.stat(rel)

    def _put(self, key: str, data: bytes, meta: Mapping[str, str] | None) -> None:
        blob = self.bucket.blob(key)
        blob.metadata = dict(meta) if meta else None
        blob.upload_from_string(data, content_type="application/octet-stream", **self._call())

    def _patch_metadata(self, blob: Blob, meta: Mapping[str, str | None]) -> None:
        """Gives ``blob`` the custom metadata ``meta`` (a None value removes its key): a PATCH,
        the bytes and the generation stay."""
        blob.metadata = dict(meta)
        blob.patch(**self._call())

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        rel = normalize(path)
        if not rel and not self.prefix:
            return self.stat(rel)  # a bucket's root has no object to hold them
        with self._errors(rel):
            blob = self._blob(self._key(rel)) if rel else None
            if blob is None:  # a directory: its marker holds them (written if it had none)
                if not self.stat(rel).is_dir:
                    raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")
                marker = self._dir_prefix(rel)
                found = self._blob(marker)
                meta = posix_metadata(attrs, directory=True)
                if found is None:
                    self._put(marker, b"", meta)
                else:
                    self._patch_metadata(found, {**_metadata(found), **meta})
            else:
                self._patch_metadata(blob, replaced_metadata(_metadata(blob), attrs))
        return self.stat(rel)

    def delete(self, path: str) -> None:
        rel = normalize(path)
        status = self.stat(rel)
        if status.is_dir:
            raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
        with self._errors(rel):
            self.bucket.delete_blob(self._key(rel), **self._call())
            self._keep_parent(rel)

    def _keep_parent(self, rel: str) -> None:
        """After the last object under an implicit directory went, writes its marker: a
        directory does not vanish because its last file was deleted or moved."""
        parent = rel.rpartition("/")[0]
        if parent and not self._first(self._dir_prefix(parent), 1):
            self._put(self._dir_prefix(parent), b"", None)

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        rel = normalize(path)
        if not rel:
            return
        self.rules.check(rel, is_dir=True)
        with self._errors(rel):
            marker = self._dir_prefix(rel)
            if self._blob(marker) is not None:
                return  # it exists: a new marker would drop its attributes and xattrs
            self._put(marker, b"", posix_metadata(attrs, directory=True))

    def rmdir(self, path: str) -> None:
        rel = normalize(path)
        if not rel:
            raise UfsInvalidPath(f"{self.uri}: the root cannot be removed")
        prefix = self._dir_prefix(rel)
        with self._errors(rel):
            names = self._first(prefix, 2)
            if any(n != prefix for n in names):
                raise UfsNotEmpty(f"{self.uri}: {rel} is not empty")
            if not names:
                raise UfsNotFound(f"{self.uri}: {rel}: no such directory")
            self.bucket.delete_blob(prefix, **self._call())

    def _copy(self, a: str, b: str) -> None:
        """Object ``a`` copied to ``b``, metadata and all: a rewrite, which GCS may take in
        several calls for a large object (each returns a token to go on)."""
        source = self.bucket.blob(self._key(a))
        target = self.bucket.blob(self._key(b))
        token, _done, _total = target.rewrite(source, **self._call())
        while token is not None:
            token, _done, _total = target.rewrite(source, token=token, **self._call())

    def rename(self, src: str, dst: str) -> None:
        a, b = normalize(src), normalize(dst)
        self.rules.check(b)
        if self.stat(a).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
        with self._errors(a):
            self._copy(a, b)  # then a delete: not atomic, as on S3
            self.bucket.delete_blob(self._key(a), **self._call())
            self._keep_parent(a)

    def link(self, src: str, dst: str) -> UfsStatus:
        """A copy: GCS has no links, so ``dst`` is an independent object (docs/mount.md)."""
        a, b = normalize(src), normalize(dst)
        if self.stat(a).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
        with self._errors(a):
            self._copy(a, b)
        return self.stat(b)

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        """An empty object whose metadata carries the type, as s3fs-fuse writes one."""
        rel = normalize(path)
        meta = special_metadata(mode, attrs)
        if rdev:
            meta["rdev"] = str(rdev)
        with self._errors(rel):
            self._put(self._key(rel), b"", meta)
        return self.stat(rel)

    # -- extended attributes -----------------------------------------------------------------

    def check_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        size = len(XATTR_META) + len(encode_xattrs(xattrs))
        if xattrs and size > XATTR_META_MAX:
            raise UfsNoSpace(
                f"{self.uri}: {normalize(path) or '/'}: extended attributes take {size} bytes of"
                f" custom metadata encoded, over the {XATTR_META_MAX} bytes GCS leaves them"
                " (8 KiB per object)"
            )

    def _meta_blob(self, rel: str) -> Blob | None:
        """The object whose metadata holds ``rel``'s attributes: the object, or a directory's
        marker; None for a directory without one (an implicit directory)."""
        blob = self._blob(self._key(rel))
        if blob is not None:
            return blob
        if self.stat(rel).is_dir:
            return self._blob(self._dir_prefix(rel))
        raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        rel = normalize(path)
        with self._errors(rel):
            blob = self._meta_blob(rel) if rel else None
        return decode_xattrs(_metadata(blob).get(XATTR_META, "")) if blob is not None else {}

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        rel = normalize(path)
        if not rel:
            return  # the bucket's root has no object to hold them: the namespace keeps them
        self.check_xattrs(rel, xattrs)
        with self._errors(rel):
            blob = self._meta_blob(rel)
            value = encode_xattrs(xattrs) if xattrs else None
            if blob is None:  # an implicit directory gets its marker, as s3fs makes one
                self._put(self._dir_prefix(rel), b"", {XATTR_META: value} if value else None)
                return
            self._patch_metadata(blob, {**_metadata(blob), XATTR_META: value})

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.session.close()
        self.client.close()


def _metadata(blob: Blob | None) -> dict[str, str]:
    """An object's custom metadata, without the keys a PATCH removed (None on some stores)."""
    if blob is None:
        return {}
    return {k: v for k, v in (blob.metadata or {}).items() if v is not None}


def _file_status(rel: str, blob: Blob) -> UfsStatus:
    # The fingerprint is the content's own hash (MD5, or CRC32C for a composed object, which
    # has none), as S3's ETag: it changes with every new content, and a copy (link) of the
    # same bytes has the same one. The generation would change on a copy too.
    digest = blob.md5_hash or (blob.crc32c and f"crc32c:{blob.crc32c}") or f"g{blob.generation}"
    return file_status(rel, blob.size or 0, blob.updated, digest, _metadata(blob))


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

"""Azure Blob Storage (and Azurite) through the official azure-storage-blob SDK.

``az://CONTAINER/PREFIX``: a UFS path maps to the blob ``<prefix>/<path>``. Directories exist
as S3's do (ufs/s3.py), and both kinds are understood: ``dir/`` marker blobs (what ``mkdir``
writes) and implicit prefixes of deeper blobs. POSIX attributes and extended attributes are
user metadata under the names the S3 connector uses (``mode``, ``uid``, ``gid``, ``mtime``,
``rdev``, ``xattr``; ufs/s3meta.py), which a listing returns with each blob: no request per
entry. A change of attributes is one Set Blob Metadata (no copy). Fingerprints are the size and
the Content-MD5 every write here stores (ufs/azureblocks.py), else the ETag: both change when
the content does. Accounts with a hierarchical namespace (ADLS Gen2) are refused at ``check``:
their directories are real objects that blob markers do not describe.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobPrefix, BlobProperties

from ufs.azureblocks import upload
from ufs.azureclient import service_client
from ufs.azureerrors import azure_errors, code_of
from ufs.azureoptions import AzureOptions
from ufs.base import OnStatus, UfsAttrs, UfsStatus, UnderFS, join, normalize
from ufs.errors import (
    UfsError,
    UfsInvalidPath,
    UfsIsADirectory,
    UfsNoSpace,
    UfsNotADirectory,
    UfsNotEmpty,
    UfsNotFound,
    UfsUnsupported,
)
from ufs.objectkeys import ObjectKeys
from ufs.s3meta import dir_status, file_status, posix_metadata, replaced_metadata, special_metadata
from ufs.s3xattrs import XATTR_META, decode_xattrs, encode_xattrs

XATTR_META_MAX = 7168  # of the 8 KiB of metadata a blob holds; the rest for mode, owner, times
COPY_POLL_S = 0.2
HEADS = 16  # a listing's marker requests in flight


class AzureUnderFS(ObjectKeys, UnderFS):
    def __init__(
        self,
        container: str,
        prefix: str = "",
        options: AzureOptions | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.container = container
        self.prefix = normalize(prefix)
        self.rules = self.rules_for(self.prefix)
        self.options = options = options or AzureOptions()
        self.uri = f"az://{container}/{self.prefix}" if self.prefix else f"az://{container}"
        self.service = service_client(options, credentials or {})
        self.client = self.service.get_container_client(container)
        self._lock = threading.Lock()
        self._head_pool: ThreadPoolExecutor | None = None  # a listing's marker requests
        # Named in errors: without the query, which holds a SAS given as the credential.
        where = urlsplit(self.service.url)
        self.endpoint = f"{where.scheme}://{where.netloc}{where.path}".rstrip("/")

    def __repr__(self) -> str:
        return f"AzureUnderFS({self.uri!r}, endpoint={self.endpoint!r})"

    # -- names and errors --------------------------------------------------------------------

    def _blob(self, key: str) -> BlobClient:
        return self.client.get_blob_client(key)

    def _errors(self, rel: str) -> AbstractContextManager[None]:
        return azure_errors(self.uri, self.container, self.endpoint, self.options.max_attempts, rel)

    def check(self) -> None:
        """Fails early, with the reason, if the container is missing, refuses these credentials
        or belongs to an account with a hierarchical namespace."""
        with self._errors(""):
            self.client.get_container_properties()
            try:
                info = self.client.get_account_information()
            except HttpResponseError:
                return  # a SAS without the right to ask: nothing tells, the blob calls work
        if info.get("is_hns_enabled"):
            raise UfsUnsupported(
                f"{self.uri}: the account has a hierarchical namespace (ADLS Gen2), whose"
                " directories are not blob prefixes; mount a container of an account without"
                " one (or reach it through a local mount of the file system)"
            )

    def _properties(self, key: str) -> BlobProperties | None:
        """Blob ``key``'s properties; None if there is no such blob."""
        try:
            return self._blob(key).get_blob_properties()
        except HttpResponseError as exc:
            if exc.status_code == 404 and code_of(exc) not in ("ContainerNotFound",):
                return None
            raise

    def _first_below(self, prefix: str) -> BlobProperties | None:
        """The first blob whose name begins with ``prefix`` (one List Blobs of one entry)."""
        pages = self.client.list_blobs(
            name_starts_with=prefix, include=["metadata"], results_per_page=1
        ).by_page()
        return next(iter(next(pages, [])), None)

    # -- reading -----------------------------------------------------------------------------

    def stat(self, path: str) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            return UfsStatus("", True, 0, 0, "")
        if not _is_utf8(rel):  # no blob can be named so: nothing to ask the store
            raise UfsNotFound(f"{self.uri}: {rel!r}: no such file or directory")
        with self._errors(rel):
            props = self._properties(self._key(rel))
            if props is not None:
                return _file(rel, props)
            marker = self._dir_prefix(rel)
            first = self._first_below(marker)
            if first is not None:
                # A marker sorts first below its prefix: without one there is no metadata.
                return dir_status(rel, first.metadata if first.name == marker else None)
        raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")

    def list(self, path: str) -> Iterator[UfsStatus]:
        return self._list(normalize(path))

    def _list(self, rel: str) -> Iterator[UfsStatus]:
        if not _is_utf8(rel):
            raise UfsNotFound(f"{self.uri}: {rel!r}: no such directory")
        prefix = self._dir_prefix(rel)
        found = False
        with self._errors(rel):
            pages = self.client.walk_blobs(
                name_starts_with=prefix or None, include=["metadata"], delimiter="/",
                results_per_page=self.options.page_size,
            ).by_page()  # fmt: skip
            for page in pages:
                items = builtins.list(page)
                found = found or bool(items)
                yield from self._statuses(rel, len(prefix), items)
        if not found and rel and not self.stat(rel).is_dir:
            raise UfsNotADirectory(f"{self.uri}: {rel} is a file")

    def _statuses(self, rel: str, cut: int, items: builtins.list[Any]) -> Iterator[UfsStatus]:
        """A page's entries. A listing gives a subdirectory without its marker's metadata: the
        page's markers are asked for in parallel (none for a page of files)."""
        subdirs = [join(rel, i.name[cut:].rstrip("/")) for i in items if isinstance(i, BlobPrefix)]
        markers: Iterator[BlobProperties | None] = iter(())
        if subdirs:
            markers = self._heads().map(lambda d: self._properties(self._dir_prefix(d)), subdirs)
        for item in items:
            name = item.name[cut:]
            if isinstance(item, BlobPrefix):
                marker = next(markers)
                meta = marker.metadata if marker is not None else None
                yield dir_status(join(rel, name.rstrip("/")), meta)
            elif name:  # else the directory's own marker
                yield _file(join(rel, name), item)

    def _heads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._head_pool is None:
                self._head_pool = ThreadPoolExecutor(HEADS, thread_name_prefix="az-head")
            return self._head_pool

    def read(self, path: str, offset: int, length: int) -> bytes:
        return b"".join(self.read_stream(path, offset, length))

    def read_stream(
        self, path: str, offset: int, length: int, on_status: OnStatus | None = None
    ) -> Iterator[bytes]:
        # on_status is never called: a listing brings each blob's metadata already.
        rel = normalize(path)
        if length <= 0:
            return
        with self._errors(rel):
            try:
                # Requests of read_chunk bytes, each handed on as it comes; the SDK retries a
                # chunk whose connection broke from where it broke.
                download = self._blob(self._key(rel)).download_blob(
                    offset=offset, length=length, max_concurrency=1
                )
            except HttpResponseError as exc:
                if exc.status_code == 416:
                    return  # at or past the end of the blob
                raise
            for chunk in download.chunks():
                if chunk:
                    yield chunk

    # -- writing -----------------------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        self.rules.check(rel)
        with self._errors(rel):
            upload(self._blob(self._key(rel)), source, posix_metadata(attrs, directory=False),
                   self.options)  # fmt: skip
        return self.stat(rel)

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        rel = normalize(path)
        if not rel and not self.prefix:
            return self.stat(rel)  # a container's root has no blob to hold them
        with self._errors(rel):
            props = self._properties(self._key(rel)) if rel else None
            if props is None:  # a directory: its marker holds them (written if it had none)
                if not self.stat(rel).is_dir:
                    raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")
                self._update_marker(rel, posix_metadata(attrs, directory=True))
            else:
                meta = replaced_metadata(props.metadata or {}, attrs)
                self._blob(self._key(rel)).set_blob_metadata(meta)
        return self.stat(rel)

    def _update_marker(self, rel: str, changes: Mapping[str, str]) -> None:
        """Sets ``changes`` in directory ``rel``'s marker metadata, making the marker if the
        directory had none (an implicit one)."""
        marker = self._dir_prefix(rel)
        props = self._properties(marker)
        meta = dict(props.metadata or {}) if props is not None else {}
        meta.update(changes)
        if props is None:
            self._blob(marker).upload_blob(b"", overwrite=True, metadata=meta)
        else:
            self._blob(marker).set_blob_metadata(meta)

    def delete(self, path: str) -> None:
        rel = normalize(path)
        if self.stat(rel).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
        with self._errors(rel):
            self._blob(self._key(rel)).delete_blob()
            self._keep_parent(rel)

    def _keep_parent(self, rel: str) -> None:
        """After the last blob under an implicit directory went, writes its marker: a directory
        does not vanish because its last file was deleted or moved (as on a file system)."""
        parent = rel.rpartition("/")[0]
        if parent and self._first_below(self._dir_prefix(parent)) is None:
            self._blob(self._dir_prefix(parent)).upload_blob(b"", overwrite=True)

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        rel = normalize(path)
        if not rel:
            return
        self.rules.check(rel, is_dir=True)
        with self._errors(rel):
            marker = self._dir_prefix(rel)
            if self._properties(marker) is not None:
                return  # it exists: a new marker would drop its attributes and xattrs
            meta = posix_metadata(attrs, directory=True)
            self._blob(marker).upload_blob(b"", overwrite=True, metadata=meta)

    def rmdir(self, path: str) -> None:
        rel = normalize(path)
        if not rel:
            raise UfsInvalidPath(f"{self.uri}: the root cannot be removed")
        prefix = self._dir_prefix(rel)
        with self._errors(rel):
            pages = self.client.list_blobs(name_starts_with=prefix, results_per_page=2).by_page()
            names = [b.name for b in next(pages, [])]
            if any(n != prefix for n in names):
                raise UfsNotEmpty(f"{self.uri}: {rel} is not empty")
            if not names:
                raise UfsNotFound(f"{self.uri}: {rel}: no such directory")
            self._blob(prefix).delete_blob()

    def _copy(self, src: str, dst: str) -> None:
        """A server-side copy of blob ``src`` to ``dst``, metadata and Content-MD5 included;
        returns once it is done (a copy within an account is, mostly, at once)."""
        target = self._blob(self._key(dst))
        reply = target.start_copy_from_url(self._blob(self._key(src)).url)
        status = reply.get("copy_status")
        while status == "pending":
            time.sleep(COPY_POLL_S)
            copy = target.get_blob_properties().copy
            status = copy.status
        if status != "success":
            raise UfsError(f"{self.uri}: copying {src} to {dst} ended {status}")

    def rename(self, src: str, dst: str) -> None:
        a, b = normalize(src), normalize(dst)
        self.rules.check(b)
        if self.stat(a).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
        with self._errors(a):
            self._copy(a, b)  # then a delete: not atomic, as on S3
            self._blob(self._key(a)).delete_blob()
            self._keep_parent(a)

    def link(self, src: str, dst: str) -> UfsStatus:
        """A copy: blobs have no links, so ``dst`` is an independent blob (docs/mount.md)."""
        a, b = normalize(src), normalize(dst)
        self.rules.check(b)
        if self.stat(a).is_dir:
            raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
        with self._errors(a):
            self._copy(a, b)
        return self.stat(b)

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        """An empty blob whose metadata carries the type, as the S3 connector writes one."""
        rel = normalize(path)
        self.rules.check(rel)
        meta = special_metadata(mode, attrs)
        if rdev:
            meta["rdev"] = str(rdev)
        with self._errors(rel):
            self._blob(self._key(rel)).upload_blob(b"", overwrite=True, metadata=meta)
        return self.stat(rel)

    # -- extended attributes -----------------------------------------------------------------

    def check_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        size = len(XATTR_META) + len(encode_xattrs(xattrs))
        if xattrs and size > XATTR_META_MAX:
            raise UfsNoSpace(
                f"{self.uri}: {normalize(path) or '/'}: extended attributes take {size} bytes of"
                f" blob metadata encoded, over the {XATTR_META_MAX} bytes Azure leaves them"
                " (8 KiB per blob)"
            )

    def _meta_props(self, rel: str) -> tuple[str, BlobProperties | None]:
        """The blob whose metadata holds ``rel``'s attributes (the blob, or a directory's
        marker) and its properties: None for a directory without a marker."""
        props = self._properties(self._key(rel))
        if props is not None:
            return self._key(rel), props
        if not self.stat(rel).is_dir:
            raise UfsNotFound(f"{self.uri}: {rel}: no such file or directory")
        marker = self._dir_prefix(rel)
        return marker, self._properties(marker)

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        rel = normalize(path)
        if not rel:
            return {}
        with self._errors(rel):
            _key, props = self._meta_props(rel)
        meta: dict[str, Any] = dict(props.metadata or {}) if props is not None else {}
        return decode_xattrs(meta.get(XATTR_META, ""))

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        rel = normalize(path)
        if not rel:
            return  # the container's root has no blob to hold them: the namespace keeps them
        self.check_xattrs(rel, xattrs)
        with self._errors(rel):
            key, props = self._meta_props(rel)
            meta = dict(props.metadata or {}) if props is not None else {}
            meta.pop(XATTR_META, None)
            if xattrs:
                meta[XATTR_META] = encode_xattrs(xattrs)
            if props is None:  # an implicit directory gets its marker
                self._blob(key).upload_blob(b"", overwrite=True, metadata=meta)
            else:
                self._blob(key).set_blob_metadata(meta)

    def close(self) -> None:
        with self._lock:
            pool, self._head_pool = self._head_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.service.close()


def _file(rel: str, props: BlobProperties) -> UfsStatus:
    md5 = props.content_settings.content_md5 if props.content_settings else None
    version = bytes(md5).hex() if md5 else str(props.etag or "")
    return file_status(rel, props.size, props.last_modified, version, props.metadata)


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

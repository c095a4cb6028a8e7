"""An S3 connector's writes that start before their writer closes (ufs/s3parts.py), and the
sweep of the multipart uploads that writers which died left behind.

``stage`` hands out a spool file in the caller's spool directory (the home) that uploads its
parts as they fill; ``land`` completes that upload, or aborts it and sends the spool whole.
``leftovers`` lists, and ``clean_leftovers`` aborts, the incomplete multipart uploads under the
mount's prefix that no write of this connector has in progress: a daemon killed mid-write
leaves its upload there (no object: the store shows nothing of it, but its parts cost
storage). Opening a writable mount after an unclean stop sweeps them (engine/mounts.py);
``shoal fsck`` lists them and ``--repair`` aborts them. An upload another program has in
progress under the same prefix looks the same, and would be aborted too: a mount's prefix is
the mount's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from threading import Event
from typing import TYPE_CHECKING, BinaryIO

from ufs.base import NameRules, UfsAttrs, UfsStatus, normalize
from ufs.errors import UfsError, UfsIsADirectory
from ufs.s3options import S3Options
from ufs.s3parts import SpoolReader, StreamedUpload, UploadSlots
from ufs.staged import StagedWrite

# Below S3's own minimum part size no multipart upload can complete.
MIN_PART = 5 << 20


class MultipartWrites:
    """Mixed into S3UnderFS (which provides what is declared here)."""

    bucket: str
    uri: str
    options: S3Options
    rules: NameRules
    slots: UploadSlots

    if TYPE_CHECKING:  # provided by S3UnderFS and ObjectKeys
        from mypy_boto3_s3 import S3Client

        client: S3Client

        def _key(self, rel: str) -> str: ...

        def _dir_prefix(self, rel: str) -> str: ...

        def _errors(self, rel: str) -> AbstractContextManager[None]: ...

        def write(
            self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None
        ) -> UfsStatus: ...

        def stat(self, path: str) -> UfsStatus: ...

    def stage(self, path: str, spool_dir: str | None = None) -> StagedWrite | None:
        """A spool file in ``spool_dir`` whose parts are uploaded as they fill; None without
        a spool directory, or with streaming turned off (``stream_parts=false``)."""
        rel = normalize(path)
        if spool_dir is None or not self.options.stream_parts:
            return None
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        self.rules.check(rel)
        fd = os.open(spool_dir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        part = max(MIN_PART, self.options.multipart_chunk)
        return StreamedUpload(
            fd, self.client, self.bucket, self._key(rel), part,
            max(1, self.options.upload_concurrency), self.slots,
        )  # fmt: skip

    def land(self, staged: StagedWrite, path: str, attrs: UfsAttrs | None = None) -> UfsStatus:
        """The streamed upload completed as ``path``'s object; where it cannot be (the writer
        broke the sequence, a part failed, the file was renamed), aborted and the spool sent
        whole, as ``write`` sends any file."""
        if not isinstance(staged, StreamedUpload):
            raise UfsError(f"{self.uri}: not a write staged by this store")
        rel = normalize(path)
        with self._errors(rel):
            try:
                done = staged.complete(self._key(rel), attrs)
            except BaseException:
                staged.abort()
                raise
            if not done:
                staged.abort()
        if done:
            status = self.stat(rel)
        else:
            status = self.write(rel, SpoolReader(staged.fd), attrs)  # type: ignore[arg-type]
        staged.landed = True
        return status

    def _stale_uploads(self) -> list[tuple[str, str, str]]:
        """(key, upload id, when it began) of each incomplete upload under the prefix that no
        write of this connector has in progress."""
        found = []
        with self._errors(""), self.slots.lock:
            live = set(self.slots.live)
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._dir_prefix("")
            )
            for page in pages:
                for upload in page.get("Uploads", ()):
                    if upload["UploadId"] not in live:
                        began = str(upload.get("Initiated", "?"))
                        found.append((upload["Key"], upload["UploadId"], began))
        return found

    def leftovers(self) -> Sequence[str]:
        stale = self._stale_uploads()
        return [f"{key} (a multipart upload begun {began})" for key, _u, began in stale]

    def clean_leftovers(self, stop: Event | None = None) -> int:
        """Aborts the multipart uploads of writers that died (see the module's docstring)."""
        aborted = 0
        for key, upload, _began in self._stale_uploads():
            if stop is not None and stop.is_set():
                break
            with self._errors(key):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            aborted += 1
        return aborted

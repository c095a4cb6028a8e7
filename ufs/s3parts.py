"""A new S3 object uploaded while its writer still writes it: a multipart upload fed from the
writer's local spool file, part by part as the parts fill.

The writer writes into a spool file of the home (``fd``) as it would anyway; each write reports
the range it covered (``wrote``). Once the spool holds a whole first part, the upload starts in
a worker thread: ``prepare`` first (the engine makes its StoreCopy durable there, before any
byte reaches the store, and hands back the owner and mode the object gets), then
CreateMultipartUpload, then the part. Every further part is sent as it fills, at most
``in_flight`` at a time, read back from the spool (the page cache: no copy is kept in memory).
At close or fsync, ``complete`` sends the tail and completes: the caller waits for the tail
and the parts still in flight only.

Anything that breaks the sequence -- a write or a truncate below the end of the parts already
handed out, a part that failed, a rename while open, owners or modes changed meanwhile -- makes
``complete`` refuse; the connector then aborts the upload and sends the spool whole, as it did
before (ufs/s3multipart.py). An upload in progress is no object: a reader, a listing and a
crash see the old object or none, never a part. Its parts cost storage until completed or
aborted: a writer killed mid-upload leaves them, and the connector's sweep aborts them.
"""

from __future__ import annotations

import base64
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from isal import isal_zlib

from ufs.base import UfsAttrs
from ufs.s3meta import posix_metadata
from ufs.staged import StagedWrite

Part = dict[str, Any]  # {"PartNumber": n, "ETag": ...}, as CompleteMultipartUpload takes it
MAX_PARTS = 10_000  # S3's limit per upload (the tail is one of them)


def checksum_args(client: Any) -> dict[str, str]:
    """The checksum arguments of an upload or a copy, as boto3's managed transfer (s3transfer)
    gives them: CRC32 when the client computes checksums whenever an operation supports them
    (botocore's default), nothing when only where required."""
    config = getattr(getattr(client, "meta", None), "config", None)
    calc = getattr(config, "request_checksum_calculation", None)
    return {"ChecksumAlgorithm": "CRC32"} if calc == "when_supported" else {}


def upload_part(
    client: Any,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    body: bytes,
    checksum: dict[str, str],
) -> Part:
    """One part sent; what CompleteMultipartUpload needs of it (its checksum too, when the
    upload declared one: ``checksum_args``)."""
    reply = client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
        **checksum, **part_checksum(body, checksum),
    )  # fmt: skip
    part: Part = {"PartNumber": number, "ETag": reply["ETag"]}
    if "ChecksumCRC32" in reply and checksum:
        part["ChecksumCRC32"] = reply["ChecksumCRC32"]
    return part


def part_checksum(body: bytes, checksum: dict[str, str]) -> dict[str, str]:
    """The part's CRC32 as upload_part's argument, when the upload declared CRC32: given, it is
    sent as is, and botocore does not compute it with zlib's CRC (2 ms an 8 MiB part on the
    test machine against ISA-L's 0.2: a tenth of the daemon's CPU in a streamed write)."""
    if checksum.get("ChecksumAlgorithm") != "CRC32":
        return {}
    value = isal_zlib.crc32(body).to_bytes(4, "big")
    return {"ChecksumCRC32": base64.b64encode(value).decode("ascii")}


class UploadSlots:
    """The uploads a connector has in progress (never swept), and the lock under which one is
    created or a sweep lists: an upload created after a listing is not in it, and one created
    before it is registered by then."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: set[str] = set()


class StreamedUpload(StagedWrite):
    targetless = False  # its upload is begun for its key

    def __init__(
        self,
        fd: int,
        client: Any,
        bucket: str,
        key: str,
        part_size: int,
        in_flight: int,
        slots: UploadSlots,
    ) -> None:
        super().__init__(fd, "")
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size = part_size
        # Each part's checksum is handed back at completion (S3 refuses the completion of an
        # upload that declared one without them).
        self.checksum = checksum_args(client)
        self.in_flight = in_flight
        self.slots = slots
        self.attrs: UfsAttrs | None = None
        self.upload_id: str | None = None
        self.broken = False
        self.sent = 0  # bytes handed to part uploads: a multiple of part_size
        self.size = 0  # the highest end written
        self._lock = threading.Lock()
        self._parts: list[Future[Part | None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._begun = threading.Event()  # the upload exists, or could not be created
        # A discard's background abort, while it waits for the part threads: the writer's
        # close hands it the descriptor, closed once no part thread reads it any more (a
        # number closed under a part's pread could meanwhile be another file's).
        self._aborting = False
        self._close_when_aborted = False

    # -- the writer's side (any thread, the event loop included: nothing here waits) ----------

    def wrote(self, offset: int, end: int) -> None:
        with self._lock:
            if self.broken or self.landed:
                return
            if offset < self.sent:  # a part handed out may have been read already
                self.broken = True
                return
            self.size = max(self.size, end)
            while self.size >= self.sent + self.part_size:
                if len(self._parts) >= MAX_PARTS - 1:  # too large for these parts: at close
                    self.broken = True
                    return
                self._hand_out(self.sent)
                self.sent += self.part_size

    def truncated(self, size: int) -> None:
        with self._lock:
            if size < self.sent:
                self.broken = True
            self.size = size

    def _hand_out(self, start: int) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.in_flight, thread_name_prefix="s3-part")
        number = len(self._parts) + 1
        # FIFO: the first part (which creates the upload) is taken before any that waits for it.
        self._parts.append(self._pool.submit(self._send, number, start))

    # -- the worker threads ------------------------------------------------------------------

    def _send(self, number: int, start: int) -> Part | None:
        if number == 1:
            self._begin()
        else:
            self._begun.wait()
        if self.broken or self.upload_id is None:
            return None
        try:
            return self._part(number, _pread_full(self.fd, self.part_size, start))
        except Exception:  # the write at close sends it all again, and says why if it fails
            self.broken = True
            return None

    def _part(self, number: int, body: bytes) -> Part:
        assert self.upload_id is not None
        return upload_part(
            self.client, self.bucket, self.key, self.upload_id, number, body, self.checksum
        )

    def _begin(self) -> None:
        try:
            attrs = self.prepare() if self.prepare is not None else None
            self.attrs = attrs if isinstance(attrs, UfsAttrs) else None
            meta = posix_metadata(self.attrs, directory=False)
            with self.slots.lock:
                if self.broken:
                    return
                extra = {**self.checksum, **({"Metadata": meta} if meta else {})}
                reply = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, **extra
                )
                self.upload_id = reply["UploadId"]
                self.slots.live.add(reply["UploadId"])
        except Exception:
            self.broken = True
        finally:
            self._begun.set()

    # -- close, fsync, discard ---------------------------------------------------------------

    def complete(self, key: str, attrs: UfsAttrs | None) -> bool:
        """Sends the tail and completes the upload as ``key``'s object with ``attrs``; False
        (nothing completed) if the upload cannot make exactly the spool's bytes that object."""
        with self._lock:
            parts = list(self._parts)
        if not parts:
            return False
        done = [f.result() for f in parts]  # the parts in flight: what close waits for
        size = os.fstat(self.fd).st_size
        if self.broken or key != self.key or attrs != self.attrs or size < self.sent:
            return False
        if any(p is None for p in done):
            return False
        if size > self.sent:
            tail = _pread_full(self.fd, size - self.sent, self.sent)
            done.append(self._part(len(done) + 1, tail))
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
            MultipartUpload={"Parts": done},
        )  # fmt: skip
        self._finished(self.upload_id)
        return True

    def abort(self) -> None:
        """Blocking: no part stays in the store (the parts in flight are waited for first, so
        none lands after the abort)."""
        with self._lock:
            self.broken = True
            parts = list(self._parts)
        for f in parts:
            f.cancel()
        for f in parts:
            if not f.cancelled():
                f.exception()
        upload, self.upload_id = self.upload_id, None  # aborted once, whoever asks again
        try:
            if upload is not None:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload
                )
        finally:
            self._finished(upload)

    def discard(self) -> None:
        """The content will not land (unlinked while open, or its commit failed): the upload
        aborted in the background (this may run on the event loop); a failed abort leaves parts
        that the connector's next sweep aborts."""
        if self.landed:
            return
        self.landed = True
        with self._lock:
            self.broken = True
            started = bool(self._parts)
            self._aborting = started
        if started:
            threading.Thread(target=self._abort_quietly, name="s3-abort", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            if self._aborting:
                self._close_when_aborted = True
                return
        os.close(self.fd)

    def abandon(self) -> None:
        self.landed = True
        self.abort()

    def _abort_quietly(self) -> None:
        try:
            self.abort()  # returns once every part thread is done with the spool
        except Exception:
            pass
        finally:
            with self._lock:
                self._aborting = False
                close = self._close_when_aborted
            if close:
                os.close(self.fd)

    def _finished(self, upload: str | None) -> None:
        if upload is not None:
            self.slots.live.discard(upload)
        if self._pool is not None:
            self._pool.shutdown(wait=False)


class SpoolReader:
    """The spool file read from its start (what the write at close sends when the streamed
    upload could not be completed)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pos = fd, 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, os.fstat(self.fd).st_size - self.pos)
        data = os.pread(self.fd, size, self.pos)
        self.pos += len(data)
        return data


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    parts, got = [], 0
    while got < length:
        chunk = os.pread(fd, length - got, offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)

"""The S3 write ceiling of `shoal bench write` (cli/bench/writeceiling.py, ``--s3``): the
in-memory file system of cli/bench/memfs.py whose regular files are streamed into S3 multipart
uploads as they are written, the way boto3's managed transfer sends a file (its defaults:
8 MiB parts, 10 threads), and completed at fsync or the last release.

It keeps nothing on disk and nothing but the part being filled in memory: no journal, no spool,
no tier, no state to recover. What a large write costs through it is what pyfuse3, the kernel's
round trips and the upload itself cost; no pyfuse3 mount of S3 that keeps THROUGH's promise
(the store has the bytes when fsync returns) can be faster. Writes must be sequential (a
sequential write is all the benchmark does): any other is refused with EIO.

Imported only by the process serving it: pyfuse3 stays out of the benchmark's own process.
"""

from __future__ import annotations

import errno
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyfuse3
import trio

from cli.bench.memfs import MemoryFS
from ufs.s3parts import Part, checksum_args, upload_part

PART = 8 << 20  # boto3's TransferConfig.multipart_chunksize default
THREADS = 10  # boto3's TransferConfig.max_concurrency default


class _Stream:
    """One file's multipart upload: parts handed to the pool as they fill (the writer's side,
    on the event loop, never waits), completed by ``finish`` (in a thread)."""

    def __init__(self, fs: S3StreamFS, key: str) -> None:
        self.fs, self.key = fs, key
        self.size = 0
        self.chunks: list[bytes] = []
        self.filled = 0
        self.parts: list[Future[Part]] = []
        self.upload_id: str | None = None
        self.begun = threading.Event()
        self.done = False

    def add(self, buf: bytes) -> None:
        self.chunks.append(buf)
        self.filled += len(buf)
        self.size += len(buf)
        while self.filled >= PART:
            joined = b"".join(self.chunks)  # the part's one copy
            self._hand_out(joined[:PART])
            rest = joined[PART:]
            self.chunks, self.filled = ([rest] if rest else []), len(rest)

    def _hand_out(self, body: bytes) -> None:
        number = len(self.parts) + 1
        self.parts.append(self.fs.pool.submit(self._send, number, body))

    def _send(self, number: int, body: bytes) -> Part:
        if number == 1:
            try:
                reply = self.fs.client.create_multipart_upload(
                    Bucket=self.fs.bucket, Key=self.key, **self.fs.checksum
                )
                self.upload_id = reply["UploadId"]
            finally:
                self.begun.set()
        self.begun.wait()
        assert self.upload_id is not None
        fs = self.fs
        return upload_part(
            fs.client, fs.bucket, self.key, self.upload_id, number, body, fs.checksum
        )

    def finish(self) -> None:
        """The tail sent and the upload completed (one PUT for a file below a part)."""
        if self.done:
            return
        self.done = True
        tail = b"".join(self.chunks)
        self.chunks, self.filled = [], 0
        c, bucket = self.fs.client, self.fs.bucket
        if not self.parts:
            c.put_object(Bucket=bucket, Key=self.key, Body=tail)
            return
        if tail:
            self._hand_out(tail)
        done = [f.result() for f in self.parts]
        c.complete_multipart_upload(
            Bucket=bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": done}
        )


class S3StreamFS(MemoryFS):
    def __init__(self, endpoint: str, bucket: str, prefix: str) -> None:
        from cli.bench.s3server import s3_client

        super().__init__(xattrs=True)
        self.client = s3_client(endpoint, connections=THREADS)
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.checksum = checksum_args(self.client)  # as boto3's and Shoal's uploads declare
        self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="s3-part")
        self.streams: dict[int, _Stream] = {}
        self.stored = 0  # bytes of completed objects

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any) -> Any:
        if parent_inode != pyfuse3.ROOT_INODE:
            raise pyfuse3.FUSEError(errno.EIO)  # the benchmark writes at the root only
        info, attrs = await super().create(parent_inode, name, mode, flags, ctx)
        key = f"{self.prefix}/{name.decode()}" if self.prefix else name.decode()
        self.streams[attrs.st_ino] = _Stream(self, key)
        return info, attrs

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self.requests["write"] += 1
        stream = self.streams.get(fh)
        if stream is None or stream.done or off != stream.size:
            raise pyfuse3.FUSEError(errno.EIO)
        stream.add(buf)
        self.attrs[fh].st_size = stream.size
        return len(buf)

    async def fsync(self, fh: int, datasync: bool) -> None:
        self.requests["fsync"] += 1
        await self._finish(fh)

    async def release(self, fh: int) -> None:
        self.requests["release"] += 1
        await self._finish(fh)

    async def _finish(self, fh: int) -> None:
        stream = self.streams.get(fh)
        if stream is None or stream.done:
            return
        try:
            await trio.to_thread.run_sync(stream.finish)
        except Exception:
            raise pyfuse3.FUSEError(errno.EIO) from None
        self.stored += stream.size

    def bytes_held(self) -> int:
        return self.stored

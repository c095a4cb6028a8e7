"""One part of a spool file as an S3 request body, read from the file as botocore goes.

botocore reads a part's body three times (its CRC32, the SigV4 payload hash that plain HTTP
requires, then the send) and rewinds it between passes and for a retry. Handed as bytes, the
part is first read whole into memory (``multipart_chunk`` bytes per part in flight) and then
copied again by each pass; handed as this range, each pass preads chunks of the spool's page
cache, as boto3's own ``upload_file`` reads its source file (s3transfer's ReadFileChunk).
"""

from __future__ import annotations

import io
import os


class SpoolShrank(OSError):
    """The spool ended inside a part handed out: the writer truncated it meanwhile. Sent short,
    the request would leave the store waiting for the bytes its Content-Length promised."""


class SpoolRange(io.RawIOBase):
    """Bytes [start, start + length) of the file ``fd``; positions are relative to ``start``,
    so botocore's rewind to 0 for a retry rewinds to the part's first byte. No ``fileno``: a
    caller measuring the body by its descriptor would take the whole spool's size."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        super().__init__()
        self.fd, self.start, self.length = fd, start, length
        self.pos = 0

    def __len__(self) -> int:
        return self.length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self.pos = min(base + offset, self.length)
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        left = self.length - self.pos
        want = left if size is None or size < 0 else min(size, left)
        if want <= 0:
            return b""
        data = os.pread(self.fd, want, self.start + self.pos)
        if not data:
            raise SpoolShrank(f"the spool ends before byte {self.start + self.pos}")
        self.pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

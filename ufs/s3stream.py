"""The stream an S3 upload reads: boto3's managed transfer wants whole reads."""

from __future__ import annotations

import io
from typing import BinaryIO


class FullReads(io.RawIOBase):
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

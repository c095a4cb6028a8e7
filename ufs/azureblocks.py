"""Writing one blob: a single Put Blob below ``block_threshold``, else staged blocks (Put Block,
``upload_concurrency`` in flight, each ``block_size`` bytes read from the stream as they go:
bounded memory) committed by one Put Block List. Until that commit, readers see the old blob
whole; if the write fails first, nothing is committed: Azure discards the staged blocks (after
a week, or at the blob's next commit), and the old blob stays as it was.

Every blob written here carries its Content-MD5 (computed while reading), which the store keeps
through copies: the fingerprint of a copy (a rename, a link) equals its source's."""

from __future__ import annotations

import hashlib
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from azure.storage.blob import BlobBlock, BlobClient, ContentSettings

from ufs.azureoptions import AzureOptions
from ufs.s3stream import FullReads


def upload(blob: BlobClient, source: BinaryIO, meta: Mapping[str, str], opts: AzureOptions) -> None:
    """Replaces ``blob`` with what ``source`` yields, with user metadata ``meta``."""
    stream = FullReads(source)
    first = stream.read(opts.block_threshold)
    digest = hashlib.md5(first, usedforsecurity=False)
    if len(first) < opts.block_threshold:
        settings = ContentSettings(content_md5=bytearray(digest.digest()))
        blob.upload_blob(
            first, blob_type="BlockBlob", overwrite=True, metadata=dict(meta),
            content_settings=settings,
        )  # fmt: skip
        return
    token = secrets.token_hex(8)  # block ids of one blob must all be as long
    ids: list[str] = []
    in_flight: deque[Future[object]] = deque()
    with ThreadPoolExecutor(opts.upload_concurrency, thread_name_prefix="az-block") as pool:
        try:
            for index, block in enumerate(_blocks(first, stream, opts.block_size, digest.update)):
                ids.append(f"{token}-{index:06d}")
                while len(in_flight) >= opts.upload_concurrency:
                    in_flight.popleft().result()
                in_flight.append(pool.submit(blob.stage_block, ids[-1], block))
            while in_flight:
                in_flight.popleft().result()
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
    settings = ContentSettings(content_md5=bytearray(digest.digest()))
    blob.commit_block_list(
        [BlobBlock(block_id=i) for i in ids], metadata=dict(meta), content_settings=settings
    )


def _blocks(
    first: bytes, stream: FullReads, size: int, seen: Callable[[bytes], object]
) -> Iterator[bytes]:
    """The blocks of ``first`` and then of the rest of ``stream``, each ``size`` bytes but the
    last; what is read from ``stream`` is handed to ``seen`` too (``first`` is in it already)."""
    view = memoryview(first)
    while len(view) >= size:
        yield bytes(view[:size])
        view = view[size:]
    rest = bytes(view)
    while True:
        more = stream.read(size - len(rest))
        seen(more)
        block = rest + more
        rest = b""
        if not block:
            return
        yield block
        if len(block) < size:
            return

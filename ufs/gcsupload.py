"""A resumable upload to GCS, chunk by chunk from a stream, cancelled when it fails.

The session is the client's (``Blob.create_resumable_upload_session``: the object's metadata goes
with it); the chunks are PUT to it here so that a failure can cancel that very session (a DELETE
of its URI, which GCS answers 499): no object is made of an upload never finalised, and the old
one stays. (The client's own BlobWriter, cancelled, sends its DELETE to the URL that opened the
session, not to the session.)"""

from __future__ import annotations

import io
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.transport.requests import AuthorizedSession
from google.cloud.storage import Blob

from ufs.gcserrors import attempts
from ufs.gcsoptions import GCSOptions

OCTETS = "application/octet-stream"


def resumable_upload(
    blob: Blob,
    head: bytes,
    stream: io.RawIOBase,
    session: AuthorizedSession,
    options: GCSOptions,
    timeout: tuple[float, float],
) -> None:
    """Uploads ``head`` then the rest of ``stream`` in ``options.resumable_chunk`` requests."""
    url = blob.create_resumable_upload_session(
        content_type=OCTETS, timeout=timeout, retry=attempts(options)
    )
    try:
        chunk, offset = head, 0
        pending = b""
        while True:
            pending += chunk
            size = options.resumable_chunk
            while len(pending) > size:  # keep the last bytes back: the final PUT needs some
                _put(session, url, pending[:size], offset, None, options, timeout)
                offset += size
                pending = pending[size:]
            chunk = stream.read(size) or b""
            if not chunk:
                break
        _put(session, url, pending, offset, offset + len(pending), options, timeout)
    except BaseException:
        try:
            session.delete(url, timeout=timeout)  # the session cancelled: nothing is finalised
        except Exception:  # noqa: BLE001 - the upload's own failure is what to report
            pass
        raise


def _put(
    session: AuthorizedSession,
    url: str,
    data: bytes,
    offset: int,
    total: int | None,
    options: GCSOptions,
    timeout: tuple[float, float],
) -> None:
    """One chunk at ``offset`` (the last one when ``total`` is known), retried by api_core."""
    last = f"{offset + len(data) - 1}" if data else ""
    span = f"bytes {offset}-{last}" if data else "bytes *"
    headers = {"Content-Range": f"{span}/{'*' if total is None else total}"}

    def send() -> Any:
        reply = session.put(url, data=data, headers=headers, timeout=timeout)
        if reply.status_code not in (200, 201, 308):
            raise gexc.from_http_response(reply)
        return reply

    attempts(options)(send)()

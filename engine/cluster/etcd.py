"""etcd v3 through its JSON gateway (``/v3/...``: keys and values base64), over urllib3.

Only what membership needs: put, a prefix's range, leases (grant, keep-alive, revoke) and a
prefix's watch stream. Every failure to reach etcd is ``Unavailable``: the caller decides
whether that is fatal (a worker starting) or a degraded state (a client keeps its last ring).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

from engine.errors import InvalidArgument, Unavailable

TIMEOUT_S = 3.0  # one request to etcd; a watch waits for events without a read timeout
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class ClusterAddress:
    endpoint: str  # http://HOST:PORT, etcd's client URL
    name: str  # the cluster's name: its keys are under /shoal/NAME/

    @property
    def prefix(self) -> bytes:
        return f"/shoal/{self.name}/".encode()


def parse_cluster_url(url: str) -> ClusterAddress:
    """``etcd://HOST:PORT/CLUSTER`` checked, with what is wrong named."""
    parts = urlsplit(url)
    if parts.scheme != "etcd":
        raise InvalidArgument(f"--cluster {url!r}: write it etcd://HOST:PORT/CLUSTER")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise InvalidArgument(f"--cluster {url!r}: etcd's HOST:PORT is missing or not a port")
    name = parts.path.strip("/")
    if not _NAME.match(name):
        raise InvalidArgument(
            f"--cluster {url!r}: the cluster's name (after HOST:PORT/) must be 1-63 letters,"
            " digits, '.', '_' or '-'"
        )
    return ClusterAddress(f"http://{parts.hostname}:{port}", name)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix`` (etcd's range_end)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class Etcd:
    """A client of one etcd endpoint; thread-safe (urllib3's pool is)."""

    def __init__(self, endpoint: str, timeout: float = TIMEOUT_S) -> None:
        self.endpoint = endpoint.rstrip("/")
        # A watch holds a connection for as long as it lasts: others for the requests.
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(timeout), maxsize=4)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = self.http.request(
                "POST", f"{self.endpoint}{path}", body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"etcd at {self.endpoint} did not answer: {exc}") from None
        if reply.status != 200:
            text = reply.data[:200].decode(errors="replace")
            raise Unavailable(f"etcd at {self.endpoint}: {path} answered {reply.status}: {text}")
        out: dict[str, Any] = json.loads(reply.data)
        return out

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        self._post("/v3/kv/put", body)

    def range_prefix(self, prefix: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
        """(the store's revision, every key under ``prefix`` with its value)."""
        got = self._post(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        )
        kvs = [
            (base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")))
            for kv in got.get("kvs", ())
        ]
        return int(got["header"]["revision"]), kvs

    def grant(self, ttl: int) -> int:
        return int(self._post("/v3/lease/grant", {"TTL": ttl})["ID"])

    def keepalive(self, lease: int) -> int:
        """The lease's TTL renewed; 0 if it has expired (its keys are gone)."""
        got = self._post("/v3/lease/keepalive", {"ID": str(lease)})
        return int(got.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        self._post("/v3/lease/revoke", {"ID": str(lease)})

    def watch_prefix(self, prefix: bytes, start_revision: int) -> Iterator[list[dict[str, Any]]]:
        """The events under ``prefix`` from ``start_revision`` on, a list per message, until
        the stream breaks (Unavailable). Blocks while nothing changes."""
        create = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                  "start_revision": str(start_revision)}  # fmt: skip
        try:
            reply = self.http.request(
                "POST", f"{self.endpoint}/v3/watch",
                body=json.dumps({"create_request": create}).encode(),
                preload_content=False, timeout=urllib3.Timeout(connect=TIMEOUT_S, read=None),
            )  # fmt: skip
            try:
                if reply.status != 200:
                    raise Unavailable(f"etcd at {self.endpoint}: watch answered {reply.status}")
                buffered = b""
                for chunk in reply.stream(4096, decode_content=False):
                    buffered += chunk
                    *lines, buffered = buffered.split(b"\n")
                    for line in lines:
                        if line.strip():
                            result = json.loads(line).get("result", {})
                            if result.get("canceled"):  # e.g. its revision was compacted
                                raise Unavailable(f"etcd at {self.endpoint} canceled the watch")
                            yield result.get("events", [])
            finally:
                reply.close()
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"etcd at {self.endpoint}: the watch broke: {exc}") from None
        raise Unavailable(f"etcd at {self.endpoint} ended the watch")

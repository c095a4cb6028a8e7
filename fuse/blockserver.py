"""A worker's block service (docs/cluster.md): ``GET /v1/read?path=&offset=&length=`` answered
through the engine's read path, like a kernel READ: a hit from the worker's tiers, a miss
fetched from its store once (concurrent readers of a block share one request) and cached
under its quota. A frontend like the FUSE one: it translates, the engine decides.

``GET /v1/locate?path=&offset=&length=`` names the tier files of the range's cached blocks, for
a client on this host to read itself (engine/cluster/locate.py).

``GET /v1/status`` (JSON: tiers, hits, misses, what the service answered) and ``GET /metrics``
(Prometheus) tell of the worker (fuse/blockstatus.py). ``POST /v1/load?path=`` loads a file
into its cache (fuse/blockload.py: `shoal fs load --cluster` asks each file's owner).

Every request but ``/v1/health`` carries the cluster token (``Authorization: Bearer``),
compared in constant time; the token never reaches a log. Each connection is served by a
thread of its own (reads wait for the store; the engine is thread-safe).
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from engine.cluster.locate import locate
from engine.cluster.refresh import read_version
from engine.engine import Engine
from engine.errors import ShoalError
from fuse.blockload import load_file
from fuse.blockstatus import Exposition, ServiceCounters, worker_status
from fuse.boundary import errno_of

log = logging.getLogger(__name__)

MAX_READ = 64 << 20  # the longest range one request may ask for
# Engine errors as HTTP statuses (their errno says which): 404 sends a client to the store.
# 409: the store holds another version than the client expects; the client asks the store.
STATUS_OF_ERRNO = {errno.ENOENT: 404, errno.EISDIR: 400, errno.EINVAL: 400, errno.ENOTDIR: 404,
                   errno.ESTALE: 409}  # fmt: skip


class BadRequest(Exception):
    pass


def _range(query: str) -> tuple[str, int, int, str | None]:
    """path, offset, length and the version (fingerprint) the client expects, if it sent one."""
    fields = parse_qs(query, keep_blank_values=True)
    try:
        (path,), (offset,), (length,) = fields["path"], fields["offset"], fields["length"]
        start, size = int(offset), int(length)
    except (KeyError, ValueError) as exc:
        raise BadRequest("path, offset and length (whole numbers) are needed once each") from exc
    if start < 0 or size < 0 or size > MAX_READ:
        raise BadRequest(f"offset and length must be >= 0, length <= {MAX_READ}")
    expected = fields.get("fingerprint", [None])[0]
    return "/" + path.lstrip("/"), start, size, expected


class Handler(BaseHTTPRequestHandler):
    server: Http  # the BlockServer's: ``self.server.block`` is the service

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits
    # for the client's ACK of the headers. Measured on loopback, a warm 100 KB read:
    # 2.2-2.5 ms with it, 0.45-0.6 ms without.
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass  # a request line is no news; failures are logged below

    def _reply(self, status: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, self.server.block.expected):
            return True
        self.server.block.counters.count_refused()
        self._reply(401, b"a cluster token is needed\n")
        return False

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized():
            return None
        if url.path != "/v1/load":
            return self._reply(404, b"no such service\n")
        path = parse_qs(url.query).get("path", [""])[0]
        if not path.strip("/"):
            return self._reply(400, b"path (a file below the store's root) is needed\n")
        self.server.block.counters.count("load")
        try:
            loaded = load_file(self.server.block.engine, "/" + path.lstrip("/"))
        except ShoalError as exc:
            return self._error(exc, f"loading {path}")
        self._reply(200, json.dumps({"bytes": loaded}).encode(), "application/json")

    def _error(self, exc: ShoalError, what: str) -> None:
        status = STATUS_OF_ERRNO.get(errno_of(exc), 503)
        if status == 503:
            self.server.block.counters.count_failed()
            log.warning("block service: %s: %s", what, exc)
        self._reply(status, f"{exc}\n".encode())

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/v1/health":
            return self._reply(200, b"ok\n")
        if not self._authorized():
            return None
        if url.path == "/v1/status":
            self.server.block.counters.count("status")
            body = json.dumps(
                worker_status(self.server.block.engine, self.server.block.counters)
            ).encode()
            return self._reply(200, body, "application/json")
        if url.path == "/metrics":
            self.server.block.counters.count("metrics")
            return self._reply(
                200, self.server.block.exposition.render(), "text/plain; version=0.0.4"
            )
        if url.path not in ("/v1/read", "/v1/locate"):
            return self._reply(404, b"no such service\n")
        try:
            path, offset, length, expected = _range(url.query)
        except BadRequest as exc:
            return self._reply(400, f"{exc}\n".encode())
        if url.path == "/v1/locate":
            return self._locate(path, offset, length, expected)
        self._read(path, offset, length, expected)

    def _locate(self, path: str, offset: int, length: int, expected: str | None) -> None:
        try:
            answer = locate(self.server.block.engine.fs, path, offset, length, expected)
        except ShoalError as exc:
            return self._error(exc, f"locating {path} [{offset}, +{length})")
        self.server.block.counters.count("locate")
        self._reply(200, json.dumps(answer).encode(), "application/json")

    def _read(self, path: str, offset: int, length: int, expected: str | None) -> None:
        try:
            data = read_version(self.server.block.engine.fs, path, offset, length, expected)
        except ShoalError as exc:
            return self._error(exc, f"{path} [{offset}, +{length})")
        self.server.block.counters.count("read", len(data))
        self._reply(200, data, "application/octet-stream")


class Http(ThreadingHTTPServer):
    block: BlockServer
    # socketserver's backlog is 5: clients open connections in bursts (readahead, many readers,
    # several clients), and a connection beyond the backlog is dropped until the kernel's SYN
    # retransmit a second later, past the clients' 1 s connect timeout: measured, 262 of 288
    # reads of a `shoal bench cluster` epoch fell back to the store. The kernel caps it at
    # net.core.somaxconn.
    request_queue_size = 1024


class BlockServer:
    def __init__(self, engine: Engine, token: str, host: str, port: int) -> None:
        self.engine = engine
        self.counters = ServiceCounters()
        self.exposition = Exposition(engine, self.counters)
        self.expected = f"Bearer {token}".encode()
        self.http = Http((host, port), Handler)
        self.http.block = self
        self.http.daemon_threads = True
        self._thread = threading.Thread(
            target=self.http.serve_forever, name="block-service", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    def start(self) -> BlockServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

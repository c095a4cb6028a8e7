"""An HTTP proxy on 127.0.0.1 that injects faults between a client and a real server.

Rules are consumed in order by the requests they match: answer with a status (503 SlowDown, 500),
drop the connection without answering, hold the request for a while before forwarding it, or
stall a reply after the first bytes of its body until the test releases the rest, or cut the
connection after them (a reset mid-read), or change headers of the reply (a store that says
it is another kind).
Everything else is forwarded untouched. ``stop`` closes the port (the endpoint goes down).
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERROR_BODY = {
    503: b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    500: b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message>"
    b"</Error>",
}


@dataclass
class Fault:
    action: str  # "status", "drop", "delay", "stall", "cut" or "header"
    times: int  # how many matching requests it applies to; -1: all of them
    status: int = 503
    seconds: float = 0.0
    keep: int = 0  # stall, cut: body bytes sent before the stall or the cut
    release: threading.Event = field(default_factory=threading.Event)  # stall, delay: ends it
    method: str | None = None  # only requests with this method
    query: str | None = None  # only requests whose query string contains this
    # "header": the reply, forwarded, with these headers (lowercase names) set or replaced
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.method and fault.method != method:
                    continue
                if fault.query and fault.query not in path:
                    continue
                if fault.times == 0:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                return fault
            return None

    def start(self) -> FaultProxy:
        self._lock = threading.Lock()
        proxy = self
        up = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._take(self.command, self.path)
                if fault is not None:
                    if fault.action == "drop":
                        self.close_connection = True
                        self.connection.close()
                        return
                    if fault.action == "status":
                        payload = ERROR_BODY.get(fault.status, b"")
                        self.send_response(fault.status)
                        self.send_header("Content-Type", "application/xml")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    if fault.action == "delay":  # ended early by the test's release
                        fault.release.wait(fault.seconds)
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=60)
                try:
                    headers = dict(self.headers.items())  # Host too: it is signed
                    conn.request(self.command, self.path, body=body, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                    self.send_response(reply.status)
                    extra = dict(fault.headers) if fault is not None else {}
                    for key, value in reply.getheaders():
                        if key.lower() in extra:
                            continue  # replaced
                        if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(key, value)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    # A HEAD reply has no body but tells the object's length: pass that on.
                    told = reply.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", told or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        if fault is not None and fault.action == "cut":
                            self.wfile.write(data[: fault.keep])
                            self.wfile.flush()
                            self.close_connection = True
                            # Lingering 0 s: the close sends a reset, not an orderly end.
                            linger = struct.pack("ii", 1, 0)
                            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                            self.connection.close()
                            return
                        if fault is not None and fault.action == "stall":
                            self.wfile.write(data[: fault.keep])
                            self.wfile.flush()
                            fault.release.wait(60)
                            data = data[fault.keep :]
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

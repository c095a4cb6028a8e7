"""A cluster client's connector: the store's own for everything but a file's bytes, which come
from the worker that owns the file (engine/cluster/ring.py), over its block service.

It knows nothing of caching: to the read path it is a store like any other, whose reads happen
to be answered by a worker's cache. If the owner fails (refused, timed out, an error status),
the next worker on the ring is asked, then the store itself: a dead worker costs a reader at
most ``CONNECT_TIMEOUT_S`` per worker while its lease lasts (a refused connection costs less),
never an error; a hung one ``READ_TIMEOUT_S``, and all of them together at most
``WORKERS_BUDGET_S`` before the store is asked. A worker that failed is skipped for
``SUSPECT_S``, by then its lease is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from threading import Event
from typing import BinaryIO

import urllib3

from engine.cluster.membership import LEASE_TTL_S, Members
from engine.cluster.shortread import LOCATE_PATH, Locations, located, read_located
from ufs.base import OnStatus, StagedWrite, UfsAttrs, UfsStatus, UnderFS

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 10.0  # a worker's own miss may wait for its store this long
# All workers asked for one read within this, then the store: a reader's read stays within the
# read path's deadline (ufs.read_deadline_s, 45 s) with the store's own attempt after it.
WORKERS_BUDGET_S = 12.0
SUSPECT_S = LEASE_TTL_S + 1.0
READ_PATH = "/v1/read"
MAX_READ = 64 << 20  # the longest range one request asks for (the service refuses more)


class ClusterUnderFS(UnderFS):
    def __init__(self, inner: UnderFS, members: Members, token: str) -> None:
        self.inner = inner
        self.uri, self.rules, self.lists_attrs = inner.uri, inner.rules, inner.lists_attrs
        self.members = members
        self._auth = {"Authorization": f"Bearer {token}"}
        timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
        self.http = urllib3.PoolManager(retries=False, timeout=timeout, maxsize=16)
        self._suspects: dict[str, float] = {}
        self._lock = threading.Lock()
        self.remote_reads = self.fallbacks = 0  # reads a worker answered, reads it did not
        # On the owner's host, its tier files are read directly (cluster.short_circuit): reads
        # a worker answered too (in ``remote_reads``), without its service.
        self.short_circuit = True
        self.short_reads = 0
        self.locations = Locations()
        # A node that is a worker too (`shoal mount --cluster --serve`): its own block
        # service's address. The files the ring gives it are its own engine's, read from the
        # store and cached by its read path, never asked of itself over HTTP.
        self.local: str | None = None
        self.local_reads = 0
        # Set by the client (engine/cluster/client.py) once its engine is open: the version of
        # a path its namespace holds, sent with each read; the paths a change reached.
        self.expect: Callable[[str], str | None] = lambda path: None
        self.publish: Callable[[Sequence[str]], None] = lambda paths: None

    def owns(self, path: str) -> bool:
        """Whether this node is the owner of ``path`` on the ring (a node that is no worker
        owns nothing)."""
        first = self.members.addresses(path, 1)
        return self.local is not None and bool(first) and first[0] == self.local

    def _usable(self, addr: str) -> bool:
        with self._lock:
            since = self._suspects.get(addr)
            if since is not None and time.monotonic() - since > SUSPECT_S:
                del self._suspects[addr]
                since = None
        return since is None

    def _suspect(self, addr: str, why: object) -> None:
        log.warning("worker %s failed a read (%s): asking the next one", addr, why)
        with self._lock:
            self._suspects[addr] = time.monotonic()

    def _remote(self, path: str, offset: int, length: int) -> bytes | None:
        """The bytes from the first worker that answers, or None: the store must."""
        if length > MAX_READ:
            return None
        fields = {"path": path, "offset": str(offset), "length": str(length)}
        expected = self.expect(path)
        if expected:
            fields["fingerprint"] = expected
        end = time.monotonic() + WORKERS_BUDGET_S
        for addr in self.members.addresses(path):
            left = end - time.monotonic()
            if left <= 0:
                break
            if addr == self.local:  # ours (or ours next, its owner failing): the store's
                with self._lock:
                    self.local_reads += 1
                return None
            if not self._usable(addr):
                continue
            timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=min(READ_TIMEOUT_S, left))
            try:
                if self.short_circuit:
                    data = self._short(addr, fields, timeout, offset, length)
                    if data is not None:
                        return data
                reply = self.http.request(
                    "GET", f"http://{addr}{READ_PATH}", fields=fields, headers=self._auth,
                    timeout=timeout,
                )  # fmt: skip
            except urllib3.exceptions.HTTPError as exc:
                self._suspect(addr, exc)
                continue
            if reply.status == 200:
                with self._lock:
                    self.remote_reads += 1
                return reply.data
            if reply.status in (404, 409):  # the worker has not seen it, or not that version
                break
            self._suspect(addr, f"status {reply.status}")
        with self._lock:
            self.fallbacks += 1
        return None

    def _short(self, addr: str, fields: dict[str, str], timeout: urllib3.Timeout, offset: int,
               length: int) -> bytes | None:  # fmt: skip
        """The range read from ``addr``'s tier files, if it is on this host and has them all
        cached (engine/cluster/shortread.py); None: read it over HTTP."""
        version = fields.get("fingerprint")
        key = (addr, fields["path"], version or "")
        data = self.locations.read(key, offset, length) if version else None
        if data is None:
            reply = self.http.request(
                "GET", f"http://{addr}{LOCATE_PATH}", fields=fields, headers=self._auth,
                timeout=timeout,
            )  # fmt: skip
            answer = located(reply)
            data = read_located(answer, offset, length) if answer is not None else None
            if data is not None and answer is not None and version:
                self.locations.remember(key, answer)
        if data is not None:
            with self._lock:
                self.short_reads += 1
                self.remote_reads += 1
        return data

    def read(self, path: str, offset: int, length: int) -> bytes:
        data = self._remote(path, offset, length)
        return data if data is not None else self.inner.read(path, offset, length)

    def read_checked(self, path: str, offset: int, length: int) -> tuple[bytes, str | None]:
        data = self._remote(path, offset, length)
        if data is not None:
            return data, None  # which version the worker read, this side cannot tell
        return self.inner.read_checked(path, offset, length)

    def read_stream(
        self, path: str, offset: int, length: int, on_status: OnStatus | None = None
    ) -> Iterator[bytes]:
        data = self._remote(path, offset, length)
        if data is None:
            yield from self.inner.read_stream(path, offset, length, on_status)
        elif data:
            yield data

    # Everything else is the store's own.
    def stat(self, path: str) -> UfsStatus:
        return self.inner.stat(path)

    def list(self, path: str) -> Iterator[UfsStatus]:
        return self.inner.list(path)

    # A change the store has made is told to the other nodes before the call returns (so
    # before the close or the rename that made it returns to its caller).
    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        status = self.inner.write(path, source, attrs)
        self.publish([path])
        return status

    def stage(self, path: str, spool_dir: str | None = None) -> StagedWrite | None:
        return self.inner.stage(path, spool_dir)

    def land(self, staged: StagedWrite, path: str, attrs: UfsAttrs | None = None) -> UfsStatus:
        status = self.inner.land(staged, path, attrs)
        self.publish([path])
        return status

    def delete(self, path: str) -> None:
        self.inner.delete(path)
        self.publish([path])

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        self.inner.mkdir(path, attrs)
        self.publish([path])

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        status = self.inner.set_attrs(path, attrs)
        self.publish([path])
        return status

    def rmdir(self, path: str) -> None:
        self.inner.rmdir(path)
        self.publish([path])

    def rename(self, src: str, dst: str) -> None:
        self.inner.rename(src, dst)
        self.publish([src, dst])

    def link(self, src: str, dst: str) -> UfsStatus:
        status = self.inner.link(src, dst)
        self.publish([dst])
        return status

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        status = self.inner.mknod(path, mode, rdev, attrs)
        self.publish([path])
        return status

    def check_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        self.inner.check_xattrs(path, xattrs)

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        return self.inner.get_xattrs(path)

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        self.inner.set_xattrs(path, xattrs)

    def leftovers(self) -> Sequence[str]:
        return self.inner.leftovers()

    def clean_leftovers(self, stop: Event | None = None) -> int:
        return self.inner.clean_leftovers(stop)

    def close(self) -> None:
        self.http.clear()
        self.inner.close()

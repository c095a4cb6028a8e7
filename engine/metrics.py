"""Prometheus counters and timers of a running daemon, with prometheus_client: measured only
once the daemon serves them (``metrics.port``; 0, the default, serves nothing and measures
nothing; engine/exporter.py serves them).

Counted where they happen: FUSE requests and their latency per operation (fuse/boundary.py),
UFS requests, bytes and errors per operation (a wrapper around each connector), how long
operations wait for their journal entry to be durable (engine/commit.py). What is read from the
engine at scrape time is engine/exporter.py's. This module imports nothing of the engine's, so
every module may count. ``Tally`` totals (bytes written to stores) are counted always, for
`shoal stats` (fuse/counters.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from threading import Event, Lock
from typing import Any, BinaryIO

from prometheus_client import CollectorRegistry, Counter, Histogram

from ufs.base import OnStatus, UfsAttrs, UfsStatus, UnderFS
from ufs.errors import UfsError
from ufs.staged import StagedWrite

ENABLED = False  # set once by the daemon when metrics are served: no cost otherwise

REGISTRY = CollectorRegistry()
LATENCY_BUCKETS = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

FUSE_REQUESTS = Counter(
    "shoal_fuse_requests", "FUSE requests answered", ["op"], registry=REGISTRY
)  # fmt: skip
FUSE_ERRORS = Counter(
    "shoal_fuse_errors", "FUSE requests answered with an error", ["op", "errno"], registry=REGISTRY
)
FUSE_SECONDS = Histogram(
    "shoal_fuse_request_seconds", "time to answer a FUSE request", ["op"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
UFS_REQUESTS = Counter("shoal_ufs_requests", "UFS calls", ["op"], registry=REGISTRY)
UFS_ERRORS = Counter("shoal_ufs_errors", "UFS calls that failed", ["op"], registry=REGISTRY)
UFS_BYTES_READ = Counter("shoal_ufs_read_bytes", "bytes read from UFSes", registry=REGISTRY)
UFS_BYTES_WRITTEN = Counter(
    "shoal_ufs_written_bytes", "bytes written to UFSes", registry=REGISTRY
)  # fmt: skip
JOURNAL_WAIT = Histogram(
    "shoal_journal_durable_wait_seconds",
    "time an operation waited for its journal entry to be fsynced (group commit)",
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip


class Tally:
    """A total counted always, unlike the Prometheus counters above (`shoal stats` needs no
    metrics port). Under a lock: for events that are few and large (uploads), never per
    request."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


UFS_WRITTEN = Tally()  # bytes written to stores: uploads and write-through writes


class CountedUnderFS(UnderFS):
    """A connector whose calls are counted (requests, errors, bytes) for the metrics."""

    def __init__(self, inner: UnderFS) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.rules = inner.rules
        self.lists_attrs = inner.lists_attrs

    def _call(self, op: str, fn: Any, *args: Any) -> Any:
        UFS_REQUESTS.labels(op).inc()
        try:
            return fn(*args)
        except UfsError:
            UFS_ERRORS.labels(op).inc()
            raise

    def stat(self, path: str) -> UfsStatus:
        return self._call("stat", self.inner.stat, path)

    def list(self, path: str) -> Iterator[UfsStatus]:
        return self._call("list", self.inner.list, path)

    def read(self, path: str, offset: int, length: int) -> bytes:
        data: bytes = self._call("read", self.inner.read, path, offset, length)
        UFS_BYTES_READ.inc(len(data))
        return data

    def read_checked(self, path: str, offset: int, length: int) -> tuple[bytes, str | None]:
        got: tuple[bytes, str | None] = self._call(
            "read", self.inner.read_checked, path, offset, length
        )
        UFS_BYTES_READ.inc(len(got[0]))
        return got

    def read_resident(self, path: str, offset: int, length: int) -> tuple[bytes, str] | None:
        got = self.inner.read_resident(path, offset, length)
        if got is not None:  # counted only when it read: a refusal reached no store
            UFS_REQUESTS.labels("read").inc()
            UFS_BYTES_READ.inc(len(got[0]))
        return got

    def read_stream(
        self, path: str, offset: int, length: int, on_status: OnStatus | None = None
    ) -> Iterator[bytes]:
        UFS_REQUESTS.labels("read").inc()
        try:
            for chunk in self.inner.read_stream(path, offset, length, on_status):
                UFS_BYTES_READ.inc(len(chunk))
                yield chunk
        except UfsError:
            UFS_ERRORS.labels("read").inc()
            raise

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        status: UfsStatus = self._call("write", self.inner.write, path, source, attrs)
        UFS_BYTES_WRITTEN.inc(status.size)
        return status

    def stage(self, path: str, spool_dir: str | None = None) -> StagedWrite | None:
        return self.inner.stage(path, spool_dir)  # a local spool file: no request to count

    def land(self, staged: StagedWrite, path: str, attrs: UfsAttrs | None = None) -> UfsStatus:
        status: UfsStatus = self._call("write", self.inner.land, staged, path, attrs)
        UFS_BYTES_WRITTEN.inc(status.size)
        return status

    def delete(self, path: str) -> None:
        self._call("delete", self.inner.delete, path)

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        self._call("mkdir", self.inner.mkdir, path, attrs)

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        status: UfsStatus = self._call("set_attrs", self.inner.set_attrs, path, attrs)
        return status

    def rmdir(self, path: str) -> None:
        self._call("rmdir", self.inner.rmdir, path)

    def rename(self, src: str, dst: str) -> None:
        self._call("rename", self.inner.rename, src, dst)

    def link(self, src: str, dst: str) -> UfsStatus:
        status: UfsStatus = self._call("link", self.inner.link, src, dst)
        return status

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        status: UfsStatus = self._call("mknod", self.inner.mknod, path, mode, rdev, attrs)
        return status

    def check_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        self.inner.check_xattrs(path, xattrs)

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        got: dict[str, bytes] = self._call("get_xattrs", self.inner.get_xattrs, path)
        return got

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        self._call("set_xattrs", self.inner.set_xattrs, path, xattrs)

    def leftovers(self) -> Sequence[str]:
        return self.inner.leftovers()

    def clean_leftovers(self, stop: Event | None = None) -> int:
        return self.inner.clean_leftovers(stop)

    def close(self) -> None:
        self.inner.close()


def timed_wait(wait: Any, seq: int) -> None:
    start = time.perf_counter()
    wait(seq)
    JOURNAL_WAIT.observe(time.perf_counter() - start)

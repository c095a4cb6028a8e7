"""Prometheus metrics of a running daemon, with prometheus_client, served on an opt-in port
bound to 127.0.0.1 (``metrics.port``; 0, the default, serves nothing and measures nothing).

Counted where they happen: FUSE requests and their latency per operation (fuse/boundary.py),
UFS requests, bytes and errors per operation (a wrapper around each connector), how long
operations wait for their journal entry to be durable (engine/namespace.py). Read from the
engine at scrape time: the cache's hits, misses, evictions and use per tier, journal entries
appended, pending persists.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ufs.base import UfsStatus, UnderFS
from ufs.errors import UfsError

if TYPE_CHECKING:
    from engine.engine import Engine

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


class EngineCollector(Collector):
    """Figures the engine already keeps, read when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        engine = self.engine
        entries = CounterMetricFamily("shoal_journal_entries", "journal entries appended")
        entries.add_metric([], engine.state.last_seq)
        yield entries
        pending = GaugeMetricFamily("shoal_pending_persists", "files waiting to be uploaded")
        pending.add_metric([], len(engine.state.persists))
        yield pending
        cache = engine.cache
        if cache is None:
            return
        report = cache.report()
        stats = cache.stats
        for name, doc, value in (
            ("shoal_cache_hits", "block reads served from a tier", stats.hits),
            ("shoal_cache_misses", "block reads fetched from a UFS", stats.misses),
            ("shoal_cache_evictions", "blocks evicted (demoted or dropped)", stats.evictions),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        hits = CounterMetricFamily("shoal_cache_tier_hits", "block reads per tier", labels=["tier"])
        evicted = CounterMetricFamily(
            "shoal_cache_tier_evictions", "evictions per tier", labels=["tier"]
        )
        used = GaugeMetricFamily("shoal_cache_used_bytes", "bytes cached", labels=["tier"])
        capacity = GaugeMetricFamily("shoal_cache_capacity_bytes", "quota", labels=["tier"])
        blocks = GaugeMetricFamily("shoal_cache_blocks", "blocks cached", labels=["tier"])
        for tier in report["tiers"]:  # type: ignore[attr-defined]
            name = tier["name"]
            hits.add_metric([name], stats.tier_hits.get(name, 0))
            evicted.add_metric([name], stats.tier_evictions.get(name, 0))
            used.add_metric([name], tier["used_bytes"])
            capacity.add_metric([name], tier["capacity_bytes"])
            blocks.add_metric([name], tier["blocks"])
        yield from (hits, evicted, used, capacity, blocks)


def serve(engine: Engine, port: int) -> None:
    """Starts serving /metrics on 127.0.0.1:``port`` and turns measuring on."""
    global ENABLED
    REGISTRY.register(EngineCollector(engine))
    start_http_server(port, addr="127.0.0.1", registry=REGISTRY)
    ENABLED = True


class CountedUnderFS(UnderFS):
    """A connector whose calls are counted (requests, errors, bytes) for the metrics."""

    def __init__(self, inner: UnderFS) -> None:
        self.inner = inner
        self.uri = inner.uri

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

    def read_stream(self, path: str, offset: int, length: int) -> Iterator[bytes]:
        UFS_REQUESTS.labels("read").inc()
        try:
            for chunk in self.inner.read_stream(path, offset, length):
                UFS_BYTES_READ.inc(len(chunk))
                yield chunk
        except UfsError:
            UFS_ERRORS.labels("read").inc()
            raise

    def write(self, path: str, source: BinaryIO) -> UfsStatus:
        status: UfsStatus = self._call("write", self.inner.write, path, source)
        UFS_BYTES_WRITTEN.inc(status.size)
        return status

    def delete(self, path: str) -> None:
        self._call("delete", self.inner.delete, path)

    def mkdir(self, path: str) -> None:
        self._call("mkdir", self.inner.mkdir, path)

    def rmdir(self, path: str) -> None:
        self._call("rmdir", self.inner.rmdir, path)

    def rename(self, src: str, dst: str) -> None:
        self._call("rename", self.inner.rename, src, dst)

    def close(self) -> None:
        self.inner.close()


def timed_wait(wait: Any, seq: int) -> None:
    start = time.perf_counter()
    wait(seq)
    JOURNAL_WAIT.observe(time.perf_counter() - start)

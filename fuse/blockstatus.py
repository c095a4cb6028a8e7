"""What a worker's block service tells of itself (docs/cluster.md): ``GET /v1/status``, JSON for
`shoal report --cluster` (its tiers' capacity and use, blocks, hits and misses, what the service
answered), and ``GET /metrics``, the Prometheus exposition of the same counters beside the
engine's own (engine/metrics.py, engine/exporter.py). Both read the figures when asked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from engine import metrics
from engine.cache.report import cache_report
from engine.engine import Engine
from engine.exporter import EngineCollector


class ServiceCounters:
    """The block service's totals, counted always (a few per request, under a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}  # per service: read, status, metrics
        self.bytes_served = 0
        self.refused = 0  # without the right token
        self.failed = 0  # answered 503: the engine could not read

    def count(self, service: str, nbytes: int = 0) -> None:
        with self._lock:
            self.requests[service] = self.requests.get(service, 0) + 1
            self.bytes_served += nbytes

    def count_refused(self) -> None:
        with self._lock:
            self.refused += 1

    def count_failed(self) -> None:
        with self._lock:
            self.failed += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "bytes_served": self.bytes_served,
                "refused": self.refused,
                "failed": self.failed,
            }


def worker_status(engine: Engine, counters: ServiceCounters) -> dict[str, Any]:
    """The worker's ``/v1/status``: raw numbers, summed over tiers too."""
    out: dict[str, Any] = {"service": counters.snapshot(), "tiers": []}
    if engine.cache is not None:
        report = cache_report(engine.cache)
        tiers: list[dict[str, Any]] = report["tiers"]  # type: ignore[assignment]
        out["tiers"] = [{k: t[k] for k in ("name", "capacity_bytes", "used_bytes", "blocks",
                                           "hits")} for t in tiers]  # fmt: skip
        for key in ("cache_hits", "cache_misses", "ufs_bytes_read"):
            out[key] = report[key]
        out["flight_joins"] = engine.cache.stats.flight_joins
    out["capacity_bytes"] = sum(t["capacity_bytes"] for t in out["tiers"])
    out["used_bytes"] = sum(t["used_bytes"] for t in out["tiers"])
    out["blocks"] = sum(t["blocks"] for t in out["tiers"])
    return out


class ServiceCollector(Collector):
    """The block service's counters for Prometheus, read at scrape time."""

    def __init__(self, engine: Engine, counters: ServiceCounters) -> None:
        self.engine, self.counters = engine, counters

    def collect(self) -> Iterator[Any]:
        snap = self.counters.snapshot()
        requests = CounterMetricFamily(
            "shoal_block_requests", "block service requests answered", labels=["service"]
        )
        for service, n in sorted(snap["requests"].items()):
            requests.add_metric([service], n)
        yield requests
        for name, doc, value in (
            ("shoal_block_served_bytes", "bytes the block service sent", snap["bytes_served"]),
            ("shoal_block_refused", "requests without the cluster's token", snap["refused"]),
            ("shoal_block_failed", "reads the engine could not answer (503)", snap["failed"]),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        cache = self.engine.cache
        if cache is not None:
            joins = CounterMetricFamily(
                "shoal_cache_flight_joins", "misses that joined another reader's fetch"
            )
            joins.add_metric([], cache.stats.flight_joins)
            yield joins


class Exposition:
    """``/metrics`` of one worker process: the engine's collectors registered once, in the
    process's registry (engine/metrics.py). The worker turns ``metrics.ENABLED`` on before it
    opens its store, so that the store's connector is counted too."""

    def __init__(self, engine: Engine, counters: ServiceCounters) -> None:
        metrics.REGISTRY.register(EngineCollector(engine))
        metrics.REGISTRY.register(ServiceCollector(engine, counters))

    def render(self) -> bytes:
        return generate_latest(metrics.REGISTRY)

"""The Prometheus exporter of a running daemon: serves engine/metrics.py's counters and timers on
an opt-in port bound to 127.0.0.1 (``metrics.port``; 0, the default, serves nothing and measures
nothing), with the figures read from the engine at scrape time: the cache's hits, misses,
evictions and use per tier, journal entries appended, pending persists.

It reads an opened Engine, so it sits above engine/engine.py, which does not import it; the
daemon starts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from engine import metrics
from engine.cache.report import cache_report

if TYPE_CHECKING:
    from engine.engine import Engine


class EngineCollector(Collector):
    """Figures the engine already keeps, read when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        engine = self.engine
        entries = CounterMetricFamily("shoal_journal_entries", "journal entries appended")
        entries.add_metric([], engine.state.last_seq)
        yield entries
        durable = CounterMetricFamily(
            "shoal_journal_durable_entries", "journal entries synced (journal.durability)"
        )
        durable.add_metric([], engine.journal.durable_seq)
        yield durable
        pending = GaugeMetricFamily("shoal_pending_persists", "files waiting to be uploaded")
        pending.add_metric([], len(engine.state.persists))
        yield pending
        cache = engine.cache
        if cache is None:
            return
        report = cache_report(cache)
        stats = cache.stats
        for name, doc, value in (
            ("shoal_cache_hits", "block reads served from a tier", stats.hits),
            ("shoal_cache_misses", "block reads fetched from a UFS", stats.misses),
            ("shoal_cache_evictions", "blocks evicted (demoted or dropped)", stats.evictions),
            (
                "shoal_prefetched_blocks",
                "blocks cached by directory prefetch",
                stats.prefetched_blocks,
            ),
            (
                "shoal_prefetched_bytes",
                "bytes cached by directory prefetch",
                stats.prefetched_bytes,
            ),
            (
                "shoal_prefetch_skipped_space",
                "prefetches left out: no free room below the watermark",
                stats.prefetch_skipped_space,
            ),
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
    metrics.REGISTRY.register(EngineCollector(engine))
    start_http_server(port, addr="127.0.0.1", registry=metrics.REGISTRY)
    metrics.ENABLED = True

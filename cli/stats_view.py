"""What `shoal stats` prints: two snapshots of the daemon's totals (fuse/counters.py) made into
one interval's figures, as a JSON object of raw numbers or as a line of columns in human
units under a two-line header, as vmstat and `juicefs stats` print them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Totals that become per-interval figures: the JSON's names, and what is read from a snapshot.
TOTALS = (
    "cache_hits",
    "cache_misses",
    "ufs_read_bytes",
    "ufs_written_bytes",
    "journal_appends",
    "journal_fsyncs",
    "prefetched_blocks",
    "prefetched_bytes",
    "stored_blocks",
    "stores_dropped",
    "evictions",
)
# The kinds of FUSE request that get a column of their own; the rest are summed in "other".
OWN_COLUMNS = ("lookup", "getattr", "open", "read", "write", "create")


def interval(prev: dict[str, Any], cur: dict[str, Any], mountpoint: str) -> dict[str, Any]:
    """The figures of the interval between two snapshots: counts (raw numbers), the same per
    second under ``per_s``, latencies, the hit ratio (None without block reads)."""
    seconds = max(cur["time"] - prev["time"], 1e-9)
    ops: dict[str, dict[str, Any]] = {}
    for kind, now in cur["ops"].items():
        before = prev["ops"].get(kind, {})
        calls = now["calls"] - before.get("calls", 0)
        timed = now["timed"] - before.get("timed", 0)  # a sample of the calls (fuse/opstats.py)
        ns = now["ns"] - before.get("ns", 0)
        ops[kind] = {
            "count": calls,
            "errors": now["errors"] - before.get("errors", 0),
            "bytes": now["bytes"] - before.get("bytes", 0),
            "per_s": calls / seconds,
            "avg_latency_us": ns / timed / 1000 if timed else None,
            "timed": timed,
        }
    out: dict[str, Any] = {"mountpoint": mountpoint, "interval_s": seconds, "ops": ops}
    timed = sum(op["timed"] for op in ops.values())
    spent = sum(cur["ops"][k]["ns"] - prev["ops"].get(k, {}).get("ns", 0) for k in ops)
    out["fuse_ops"] = sum(op["count"] for op in ops.values())
    out["fuse_avg_latency_us"] = spent / timed / 1000 if timed else None
    out["fuse_read_bytes"] = ops.get("read", {}).get("bytes", 0)
    out["fuse_write_bytes"] = ops.get("write", {}).get("bytes", 0)
    for key in TOTALS:
        out[key] = cur.get(key, 0) - prev.get(key, 0)
    reads = out["cache_hits"] + out["cache_misses"]
    out["hit_ratio"] = out["cache_hits"] / reads if reads else None
    out["store_queue"] = cur.get("store_queue", 0)  # a level: blocks waiting to be stored
    counted = ("fuse_ops", "fuse_read_bytes", "fuse_write_bytes", *TOTALS)
    out["per_s"] = {key: out[key] / seconds for key in counted}
    return out


def count(n: float) -> str:
    """Events per second, short: 7, 950, 12.3k, 1.2M."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def size(n: float) -> str:
    """Bytes per second, short and binary: 0, 512, 96K, 12.5M, 1.1G."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{n:.0f}"


def latency(us: float | None) -> str:
    """Five characters at most: 850us, 1.2ms, 35ms, 2.1s."""
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f}us"
    if us < 10_000:
        return f"{us / 1000:.1f}ms"
    if us < 1e6:
        return f"{us / 1000:.0f}ms"
    return f"{us / 1e6:.1f}s"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{100 * r:.1f}"


def _other(f: dict[str, Any]) -> float:
    own = sum(f["ops"].get(k, {}).get("per_s", 0.0) for k in OWN_COLUMNS)
    return max(0.0, f["fuse_ops"] / f["interval_s"] - own)  # never "-0" from rounding


Figure = Callable[[dict[str, Any]], str]
Column = tuple[str, Figure]


def _rate(key: str, unit: Callable[[float], str] = count) -> Figure:
    return lambda f: unit(f["per_s"][key])


def _op(kind: str) -> Figure:
    return lambda f: count(f["ops"].get(kind, {}).get("per_s", 0.0))


# (priority, group, columns): each group one heading over its columns, shown left to right in
# this order; on a terminal too narrow for all, the groups of lowest priority (highest
# number) are left out rather than every line wrapping.
GROUPS: list[tuple[int, str, list[Column]]] = [
    (0, "fuse ops/s", [(k, _op(k)) for k in OWN_COLUMNS] + [
        ("other", lambda f: count(_other(f))),
        ("lat", lambda f: latency(f["fuse_avg_latency_us"]))]),
    (3, "fuse B/s", [("read", _rate("fuse_read_bytes", size)),
                     ("write", _rate("fuse_write_bytes", size))]),
    (1, "cache blocks/s", [("hit", _rate("cache_hits")), ("miss", _rate("cache_misses")),
                           ("hit%", lambda f: _ratio(f["hit_ratio"]))]),
    (2, "ufs B/s", [("read", _rate("ufs_read_bytes", size)),
                    ("write", _rate("ufs_written_bytes", size))]),
    (4, "journal/s", [("append", _rate("journal_appends")), ("fsync", _rate("journal_fsyncs"))]),
    (5, "background blocks", [
        ("pref/s", _rate("prefetched_blocks")), ("store/s", _rate("stored_blocks")),
        ("drop/s", _rate("stores_dropped")), ("queue", lambda f: count(f["store_queue"]))]),
]  # fmt: skip


def _width(name: str) -> int:
    return max(6, len(name) + 1)  # every figure is 5 characters at most


def fit(columns: int | None) -> list[tuple[str, list[Column]]]:
    """The groups a line of ``columns`` characters holds (None: all), in their order."""
    kept: set[str] = set()
    used = -1  # no separator before the first group
    for _priority, group, cols in sorted(GROUPS, key=lambda g: g[0]):
        width = 1 + sum(_width(name) for name, _f in cols)
        if kept and columns is not None and used + width > columns:  # the first one always
            break
        kept.add(group)
        used += width
    return [(group, cols) for _p, group, cols in GROUPS if group in kept]


def header(groups: list[tuple[str, list[Column]]]) -> list[str]:
    """Two lines: each group's name centred in dashes over its columns' names."""
    top, names = [], []
    for group, columns in groups:
        width = sum(_width(name) for name, _f in columns)
        top.append(f" {group} ".center(width, "-"))
        names.append("".join(name.rjust(_width(name)) for name, _f in columns))
    return [" ".join(top), " ".join(names)]


def line(figures: dict[str, Any], groups: list[tuple[str, list[Column]]]) -> str:
    return " ".join(
        "".join(fig(figures).rjust(_width(name)) for name, fig in columns) for _g, columns in groups
    )

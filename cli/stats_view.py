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
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f}us"
    if us < 1e6:
        return f"{us / 1000:.1f}ms"
    return f"{us / 1e6:.1f}s"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{100 * r:.1f}"


def _other(f: dict[str, Any]) -> float:
    own = sum(f["ops"].get(k, {}).get("per_s", 0.0) for k in OWN_COLUMNS)
    return float(f["fuse_ops"] / f["interval_s"] - own)


Column = tuple[str, int, Callable[[dict[str, Any]], str]]

# (group, [(name, width, figure)]): each group one heading over its columns.
GROUPS: list[tuple[str, list[Column]]] = [
    (
        "fuse ops/s",
        [(k, max(7, len(k) + 1), lambda f, k=k: count(f["ops"].get(k, {}).get("per_s", 0.0)))
         for k in OWN_COLUMNS]
        + [("other", 6, lambda f: count(_other(f))), ("lat", 7, lambda f: latency(
            f["fuse_avg_latency_us"]))],
    ),
    (
        "fuse B/s",
        [("read", 7, lambda f: size(f["per_s"]["fuse_read_bytes"])),
         ("write", 7, lambda f: size(f["per_s"]["fuse_write_bytes"]))],
    ),
    (
        "cache blocks/s",
        [("hit", 7, lambda f: count(f["per_s"]["cache_hits"])),
         ("miss", 7, lambda f: count(f["per_s"]["cache_misses"])),
         ("hit%", 6, lambda f: _ratio(f["hit_ratio"]))],
    ),
    (
        "ufs B/s",
        [("read", 7, lambda f: size(f["per_s"]["ufs_read_bytes"])),
         ("write", 7, lambda f: size(f["per_s"]["ufs_written_bytes"]))],
    ),
    (
        "journal/s",
        [("append", 7, lambda f: count(f["per_s"]["journal_appends"])),
         ("fsync", 6, lambda f: count(f["per_s"]["journal_fsyncs"]))],
    ),
    (
        "background blocks",
        [("pref/s", 7, lambda f: count(f["per_s"]["prefetched_blocks"])),
         ("store/s", 8, lambda f: count(f["per_s"]["stored_blocks"])),
         ("drop/s", 7, lambda f: count(f["per_s"]["stores_dropped"])),
         ("queue", 6, lambda f: count(f["store_queue"]))],
    ),
]  # fmt: skip


def header() -> list[str]:
    """Two lines: each group's name centred in dashes over its columns' names."""
    top, names = [], []
    for group, columns in GROUPS:
        width = sum(w for _n, w, _f in columns)
        top.append(f" {group} ".center(width, "-").rjust(width))
        names.append("".join(name.rjust(w) for name, w, _f in columns))
    return [" ".join(top), " ".join(names)]


def line(figures: dict[str, Any]) -> str:
    return " ".join(
        "".join(fig(figures).rjust(w) for _n, w, fig in columns) for _g, columns in GROUPS
    )

"""`shoal report`: what the block cache holds and did, for a person (human sizes, hit ratio,
the mounts, the daemon's PID and uptime, what the kernel served) or, with --json, for a
program (raw numbers)."""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cli import common
from cli.common import EXIT_OK, open_engine
from cli.output import dumps
from engine.cache.report import cache_report
from engine.cluster.report import client_view
from engine.engine import Engine
from fuse.mountinfo import shoal_mounts

KERNEL_NOTE = (
    "note: a read the kernel's page cache serves never reaches Shoal, so a warm pass over\n"
    "      files already read shows as opens without block reads, not as hits; the bytes the\n"
    "      application read are not observable here."
)


def human(n: float) -> str:
    """1536 -> "1.5 KiB": binary units, as the tiers' quotas are written."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    return f"{days}d {h}h {m}m" if days else f"{h}h {m}m {s}s" if hours else f"{m}m {s}s"


def without_secrets(uri: str) -> str:
    """A store's URI as it may be shown: no user:password part, no query (keys may be there)."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def process_uptime() -> float:
    """Seconds since this process started (Linux: its start in clock ticks since boot)."""
    with open("/proc/self/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    with open("/proc/uptime") as f:
        since_boot = float(f.read().split()[0])
    return since_boot - int(fields[19]) / os.sysconf("SC_CLK_TCK")


def gather(engine: Engine, home: str | None) -> dict[str, Any]:
    report: dict[str, Any] = dict(cache_report(engine.cache)) if engine.cache else {"tiers": []}
    report["pending_persists"] = len(engine.state.persists)
    report["journal_seq"] = engine.state.last_seq
    report["opens"] = engine.ns.open_files.total
    report["block_reads"] = report.get("cache_hits", 0) + report.get("cache_misses", 0)
    report["mounts"] = [
        {"path": path, "uri": without_secrets(m.uri), "readonly": m.readonly}
        for path, m in engine.mounts.listing()
    ]
    online = common.ONLINE_ENGINE is engine
    report["daemon"] = (
        {"pid": os.getpid(), "uptime_s": round(process_uptime(), 3)} if online else None
    )
    home = os.path.abspath(home) if home else None
    report["mountpoints"] = sorted(p for p, (h, _dev) in shoal_mounts().items() if h == home)
    report["cluster"] = client_view(engine.mounts)  # None: not a cluster client
    return report


def cmd_report(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        if args.idle:  # directory prefetches and background stores end first
            if engine.prefetch is not None:
                engine.prefetch.drain()
            if engine.cache is not None:
                engine.cache.drain()
        report = gather(engine, getattr(args, "resolved_home", None))
    if args.json:
        print(dumps(report))
        return EXIT_OK
    for line in text(report):
        print(line)
    return EXIT_OK


def text(report: dict[str, Any]) -> list[str]:
    daemon = report["daemon"]
    lines = [
        f"daemon   pid {daemon['pid']}, up {duration(daemon['uptime_s'])}"
        if daemon
        else "daemon   none (this report is of the home, read offline: counters start at 0)"
    ]
    for point in report["mountpoints"]:
        lines.append(f"mounted  at {point}")
    for m in report["mounts"]:
        lines.append(
            f"store    {m['path']} <- {m['uri']}" + (" (read-only)" if m["readonly"] else "")
        )
    for tier in report["tiers"]:
        used, cap = tier["used_bytes"], tier["capacity_bytes"]
        share = 100 * used / cap if cap else 0
        lines.append(
            f"tier     {tier['name']:<4} {human(used):>10} of {human(cap):>10} ({share:5.1f}%),"
            f" {tier['blocks']:,} blocks, {tier['hits']:,} hits  {', '.join(tier['paths'])}"
        )
    if "cache_hits" in report:
        lines.append(
            f"reads    {report['block_reads']:,} block reads reached Shoal:"
            f" {report['cache_hits']:,} hits,"
            f" {report['cache_misses']:,} misses (hit ratio {100 * report['hit_ratio']:.1f}%),"
            f" {human(report['ufs_bytes_read'])} read from stores"
        )
        lines.append(
            f"stored   {report['stores_dropped']:,} fetched blocks not stored (queue full);"
            f" prefetched {report['prefetched_blocks']:,} blocks"
            f" ({human(report['prefetched_bytes'])}), {report['prefetch_skipped_space']:,}"
            " left out for want of free room"
        )
    view = report.get("cluster")
    if view is not None:
        state = "DEGRADED (etcd out of reach: the last ring served)" if view["degraded"] else "ok"
        lines.append(
            f"cluster  {state}; {len(view['workers'])} workers; {view['remote_reads']:,} reads"
            f" from workers ({view.get('short_circuit_reads', 0):,} from their tier files),"
            f" {view['fallbacks']:,} from the store"
        )
    lines.append(f"opens    {report['opens']:,} file opens")
    lines.append(KERNEL_NOTE)
    lines.append(
        f"journal  seq {report['journal_seq']:,}, {report['pending_persists']} pending persists"
    )
    lost = report.get("persists_without_bytes") or []
    if lost:
        lines.append(f"pending persists without their bytes {len(lost)} (shoal fsck):")
        lines.extend(f"  {line}" for line in lost)
    return lines

"""`shoal report --cluster etcd://HOST:PORT/CLUSTER`: the cluster's workers, their capacity and
use, ring share and health (engine/cluster/report.py), for a person or, with --json, a
program."""

from __future__ import annotations

import argparse
from typing import Any

from cli import cluster_opts
from cli.common import EXIT_FAILED, EXIT_OK
from cli.output import dumps
from cli.report_cmd import human
from engine.cluster.report import cluster_report


def cmd_cluster_report(args: argparse.Namespace) -> int:
    report = cluster_report(args.cluster, cluster_opts.token(args))
    if args.json:
        print(dumps(report))
    else:
        for line in text(report):
            print(line)
    # A degraded view is a report, not a failure of the command, but scripts may want to know.
    return EXIT_FAILED if report["degraded"] else EXIT_OK


def _worker_line(w: dict[str, Any]) -> list[str]:
    health = "healthy" if w["healthy"] else "UNHEALTHY"
    lines = [f"worker   {w['id']} at {w['addr']}  {health}, ring share {100 * w['ring_share']:.1f}%"
             f"  store {w['store']}"]  # fmt: skip
    st = w["status"]
    if st is None:
        lines.append(f"         {w['error'] or 'no status'}")
        return lines
    used, cap = st["used_bytes"], st["capacity_bytes"]
    share = 100 * used / cap if cap else 0.0
    service = st["service"]
    lines.append(
        f"         {human(used)} of {human(cap)} ({share:.1f}%), {st['blocks']:,} blocks,"
        f" {st.get('cache_hits', 0):,} hits, {st.get('cache_misses', 0):,} misses;"
        f" served {service['requests'].get('read', 0):,} reads, {human(service['bytes_served'])}"
    )
    return lines


def text(report: dict[str, Any]) -> list[str]:
    lines = [f"cluster  {report['cluster']} (etcd {report['etcd']})"]
    if report["degraded"]:
        lines.append(f"DEGRADED etcd out of reach: {report['error']}")
        lines.append("         (running clients keep serving with their last ring)")
        return lines
    workers = report["workers"]
    healthy = sum(1 for w in workers if w["healthy"])
    lines.append(f"workers  {len(workers)} registered (leases alive), {healthy} healthy")
    for w in workers:
        lines.extend(_worker_line(w))
    return lines

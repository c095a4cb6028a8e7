"""`shoal bench cluster`: its command line (cli/bench/cluster.py runs it)."""

from __future__ import annotations

import argparse
import json
from types import ModuleType
from typing import Any

from cli.bench import cluster as bench_cluster
from cli.common import EXIT_OK, add_command, whole_number


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        cmds,
        common,
        "cluster",
        cmd_bench_cluster,
        "epochs through 1, 2 and 3 cluster workers and 2 clients, beside a single-node mount",
        description="Starts etcd, moto's S3 on 127.0.0.1 behind a proxy adding latency and"
        " counting requests, and an ImageNet-like dataset; then reads a cold and a warm epoch"
        " through one `shoal mount`, and through 2 `shoal mount --cluster` clients over 1, 2 and"
        " 3 `shoal worker`s. Prints files/s and MiB/s, the store's GETs per epoch and the bytes"
        " each worker holds, with ratios against the single node. Runs in a scratch directory"
        " below DIR; needs no home, needs root (FUSE), etcd and the test extras (moto).",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", help="where the scratch directory goes")
    count = whole_number(1, "a whole number", "needs at least 1")
    p.add_argument("--classes", type=count, default=8, help="class folders (8)")
    p.add_argument("--per-class", type=count, default=50, help="files per class (50)")
    p.add_argument("--shards", type=whole_number(0, "a whole number", "needs at least 0"),
                   default=2, help="large files (2)")  # fmt: skip
    p.add_argument("--shard-mib", type=count, default=8, help="their size (8 MiB)")
    p.add_argument("--readers", type=count, default=2, help="processes per client (2)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="added per S3 request (20)")
    p.add_argument(
        "--worker-quota-mib", type=float, metavar="MIB",
        help="each worker's tier (default: 3/5 of the dataset: one worker cannot hold it)",
    )  # fmt: skip
    p.add_argument("--combined", action="store_true",
                   help="instead: 3 nodes each both worker and client (--serve) against 3 workers"
                   " and 3 separate clients")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def cmd_bench_cluster(args: argparse.Namespace) -> int:
    quota = None if args.worker_quota_mib is None else int(args.worker_quota_mib * 2**20)
    bench: ModuleType = bench_cluster
    if args.combined:
        from cli.bench import clusterboth

        bench = clusterboth
    result = bench.run(
        classes=args.classes, per_class=args.per_class, shards=args.shards,
        shard_mib=args.shard_mib, readers=args.readers, latency_ms=args.latency_ms,
        worker_quota=quota, workdir=args.dir,
    )  # fmt: skip
    print(json.dumps(result) if args.json else bench.format_table(result))
    return EXIT_OK

"""`shoal fsck` and `shoal bench ...`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli import bench_cluster_cmd
from cli.bench import cache as bench_cache
from cli.bench import extras as bench_extras
from cli.bench import journal as bench_journal
from cli.bench import pathconf as bench_pathconf
from cli.bench import read as bench_read
from cli.bench import readmount as bench_readmount
from cli.bench import write as bench_write
from cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_command,
    command_group,
    open_engine,
    whole_number,
)
from cli.progress import over
from engine.cache.ordered import unsound_only_copies
from recovery.fsck import CHECKS, run_checks
from recovery.storecheck import StoreReport, check_stores
from recovery.uploadcheck import UploadReport, check_uploads


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    _register_fsck(sub, common)
    _register_bench(command_group(sub, common, "bench", "benchmarks"), common)


def _register_fsck(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub,
        common,
        "fsck",
        cmd_fsck,
        "check the namespace's invariants (offline)",
        description="Opens the home, rebuilds its state and runs named invariant checks on it,"
        " and compares the block cache's map with its tier directories; exits 1 listing the"
        " checks that fail. Changes nothing unless --repair.",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="remove orphan block files and drop (journaled) blocks that are missing or damaged",
    )


def _register_bench(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        cmds,
        common,
        "journal",
        cmd_bench_journal,
        "durable append rate, replay rate, checkpoint cost, memory per inode",
        description="Runs in a scratch directory; needs no home.",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument(
        "--inodes",
        type=_positive,
        default=None,
        metavar="N",
        help="inodes in the replay and checkpoint test (default: 1,000,000)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="S",
        help="length of each append-rate run (default: 3)",
    )

    p = add_command(
        cmds,
        common,
        "cache",
        cmd_bench_cache,
        "read throughput through the block cache, as ratios to direct reads",
        description="Cache hits against direct local reads, cold reads against direct ranged"
        " GETs from an S3 endpoint (moto, started here), at 1 and 8 readers. Needs no home.",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--file-mib", type=int, default=32, help="size of each of the 8 files")
    p.add_argument(
        "--block-sizes",
        metavar="MIB,...",
        help="instead: cold read MiB/s of one 64 MiB file per block size, 20 ms added latency",
    )

    p = add_command(  # needs no home: a scratch directory
        cmds, common, "pathconf", cmd_bench_pathconf, "what path confs cost a warm read (a ratio)"
    )
    p.add_argument("--json", action="store_true")

    p = add_command(
        cmds,
        common,
        "read",
        cmd_bench_read,
        "a training read workload through a real mount, beside local and boto3 reads",
        description="ImageNet-like small files and large shards read by parallel processes"
        " from a local directory, by direct boto3 GETs and through `shoal mount` (cold, then"
        " warm) of an S3 endpoint (moto on 127.0.0.1, with latency added by a proxy). Runs in"
        " a scratch directory below DIR (default: the system's temporary directory); needs no"
        " home, needs root (FUSE) and the test extras (moto). --mount DIR reads in your own"
        " mount (or any directory) instead; a UFS_URI in place of DIR (s3://BUCKET[/PREFIX],"
        " file:///PATH) reads that store's files through a temporary read-only mount, with"
        " `shoal mount`'s -o options and secret sources, beside direct GETs for S3.",
    )
    _bench_read_arguments(p)
    bench_readmount.add_arguments(p)
    _register_bench_write(cmds, common)
    bench_cluster_cmd.register(cmds, common)


def _register_bench_write(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        cmds,
        common,
        "write",
        cmd_bench_write,
        "tar x of small files and large sequential writes through real mounts, beside local",
        description="tar x of many 2 KB files (then sync) and a large write with fsync, onto the"
        " local disk and through `shoal mount` of a local directory on that disk (ASYNC_THROUGH,"
        " CACHE_THROUGH, THROUGH), and the large write through a mount of an S3 endpoint (moto on"
        " 127.0.0.1) against boto3's multipart upload; tar x and the large write also through a"
        " bare in-memory pyfuse3 file system (the ceiling of any pyfuse3 mount); git clone and"
        " pip install onto the local disk and through mounts (ASYNC_THROUGH, THROUGH). Runs in"
        " a scratch directory below DIR (default: the system's temporary directory); needs no"
        " home, needs root (FUSE) and the test extras (moto).",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", help="where the scratch directory goes")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument(
        "--files", type=_at_least_one, default=10_000, help="files in the tar (default 10,000)"
    )
    p.add_argument(
        "--size", type=_at_least_one, default=1024, metavar="MIB",
        help="size of the sequential writes in MiB (default 1024)",
    )  # fmt: skip
    p.add_argument(
        "--only", choices=["s3"], default=None,
        help="s3: only the large write to S3 (the mount, the bare pyfuse3 file system streaming"
        " to S3, boto3's multipart upload), for pairs of runs compared in minutes",
    )  # fmt: skip
    _bench_write_tool_arguments(p)


def _bench_write_tool_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-tools", dest="tools", action="store_false",
        help="skip git clone and pip install (needed where git is not installed)",
    )  # fmt: skip
    p.add_argument(
        "--repo-files", type=_at_least_one, default=3000, metavar="N",
        help="files in the repository git clones (default 3,000)",
    )  # fmt: skip
    p.add_argument(
        "--wheel", type=_installed_distribution, default="botocore", metavar="DIST",
        help="the installed distribution pip installs, repacked as a wheel (default botocore)",
    )  # fmt: skip


def _installed_distribution(name: str) -> str:
    import importlib.metadata

    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise argparse.ArgumentTypeError(f"{name!r} is not installed here") from None
    return name


def _bench_read_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dir", metavar="DIR|UFS_URI", nargs="?",
        help="where the scratch directory goes; or a store to read (s3://BUCKET[/PREFIX])",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--chart", metavar="PNG", help="also draw the figures into this PNG file")
    p.add_argument("--classes", type=int, default=20, help="class folders (default 20)")
    p.add_argument("--per-class", type=int, default=150, help="files per class (default 150)")
    p.add_argument("--shards", type=int, default=4, help="large files (default 4)")
    p.add_argument("--shard-mib", type=int, default=64, help="size of each (default 64)")
    p.add_argument("--readers", type=int, default=4, help="parallel readers (default 4)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="added per S3 request")
    p.add_argument(
        "--prefetch-threads", type=int, default=None,
        help="cache.prefetch_threads of the prefetch epoch (default: the configured default)",
    )  # fmt: skip


_positive = whole_number(2, "a number", "needs at least 2")
_at_least_one = whole_number(1, "a number", "needs at least 1")


def cmd_fsck(args: argparse.Namespace) -> int:
    with open_engine(args, reconcile=False) as engine:
        private = engine.private_paths()
        if args.repair:
            engine.make_private()
        cache = engine.cache.reconcile(repair=args.repair) if engine.cache else None
        gone = list(cache.missing) if cache else []
        if engine.cache is not None:  # only copies whose bytes fail their checksum too
            gone += unsound_only_copies(engine.cache.tiers, engine.state)
        with engine.ns.lock:
            # Blocks the map lists but no tier holds are gone for the data checks, repaired
            # (dropped from the map) or not.
            # One check at a time, so a terminal sees how far a large home's fsck has got.
            results = [
                result
                for check in over(CHECKS, len(CHECKS), "checking", unit="check")
                for result in run_checks(
                    engine.state,
                    [check],
                    lost=gone,
                    stops=engine.stops,
                    private=private,
                    tier_dirs=engine.tier_dirs(),
                    owner=engine.tier_owner(),
                )
            ]
            inodes, last_seq = engine.state.tree.count, engine.state.last_seq
        mounts = engine.mounts
        uploads = check_uploads(engine.state, mounts.opened, mounts.open_apart, args.repair)
    checks = len(results)
    failed = sum(1 for r in results if not r.ok)
    for r in results:
        print(f"{'ok' if r.ok else 'FAIL':<4}  {r.check.name:<13} {r.check.description}")
        for failure in r.failures:
            print(f"        {failure}")
        if r.more:
            print(f"        ... and {r.more} more")
    if cache is not None:
        checks += 1
        # A block file no entry lists is what a kill leaves between a tier write and its
        # BlockCached: harmless, and swept at every start. Only a listed block that is missing
        # or damaged is a failure.
        lost = cache.blocks_dropped
        status = "ok" if not lost else ("fix" if args.repair else "FAIL")
        print(f"{status:<4}  {'cache':<13} the block map and the tier directories agree")
        if cache.orphans_removed:
            done = "removed" if args.repair else "left by a stop (the next start removes them)"
            print(f"        {cache.orphans_removed} block files no entry lists, {done}")
        if lost:
            done = "repaired" if args.repair else "found; fsck --repair drops them"
            print(f"        {lost} missing or damaged blocks {done}")
            failed += 0 if args.repair else 1
    checks += 1
    failed += _print_stores(check_stores(engine.state, args.repair), args.repair)
    checks += 1
    failed += _print_uploads(uploads, args.repair)
    verdict = f"{failed} of {checks} checks failed" if failed else "clean"
    print(f"{inodes} inodes at seq {last_seq}: {verdict}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_bench_cache(args: argparse.Namespace) -> int:
    if args.block_sizes:
        sizes = [int(x) for x in args.block_sizes.split(",") if x.strip()]
        sweep = bench_cache.block_size_sweep(sizes)
        if args.json:
            print(json.dumps(sweep))
        else:
            for key, value in sweep.items():
                parts = key.split("_")
                print(f"block {parts[2]:>6}, readahead {parts[4]}: {value / (1 << 20):8,.1f} MiB/s")
        return EXIT_OK
    result = bench_cache.run(args.file_mib)
    print(json.dumps(result) if args.json else bench_cache.format_table(result))
    return EXIT_OK


def cmd_bench_pathconf(args: argparse.Namespace) -> int:
    result = bench_pathconf.run()
    print(json.dumps(result) if args.json else bench_pathconf.format_table(result))
    return EXIT_OK


def cmd_bench_read(args: argparse.Namespace) -> int:
    if bench_readmount.chosen(args):  # the user's own mount or store
        mine = bench_readmount.run_args(args)
        print(json.dumps(mine) if args.json else bench_readmount.format_table(mine))
        return EXIT_OK
    if args.chart:  # known before the run, not after it
        bench_extras.require("matplotlib", "--chart")
    result = bench_read.run(
        classes=args.classes,
        per_class=args.per_class,
        shards=args.shards,
        shard_mib=args.shard_mib,
        readers=args.readers,
        latency_ms=args.latency_ms,
        workdir=args.dir,
        prefetch_threads=args.prefetch_threads,
    )
    if args.chart:
        bench_read.chart(result, args.chart)
    print(json.dumps(result) if args.json else bench_read.format_table(result))
    return EXIT_OK


def cmd_bench_write(args: argparse.Namespace) -> int:
    result = bench_write.run(
        files=args.files, size_mib=args.size, workdir=args.dir, tools=args.tools,
        repo_files=args.repo_files, wheel=args.wheel, only=args.only,
    )  # fmt: skip
    print(json.dumps(result) if args.json else bench_write.format_table(result))
    return EXIT_OK


def cmd_bench_journal(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.inodes is not None:
        options["inodes"] = args.inodes
    if args.seconds is not None:
        options["seconds"] = args.seconds
    result = bench_journal.run(**options)
    print(json.dumps(result) if args.json else bench_journal.format_table(result))
    return EXIT_OK


def _print_stores(report: StoreReport, repair: bool) -> int:
    """The `stores` line of fsck; 1 if it failed."""
    troubles = report.leftovers + report.unreadable
    status = "ok" if not troubles else ("fix" if repair and not report.unreadable else "FAIL")
    status = "FAIL" if report.stuck else status
    print(f"{status:<4}  {'stores':<13} no temporary files of dead writers in local stores")
    for line in report.leftovers[:20]:
        print(f"        leftover {line}")
    for line in report.moves[:20]:
        print(f"        pending store move {line}: completed at the next start")
    for line in report.stuck[:20]:
        print(f"        store move cannot complete {line}; delete or rewrite the file")
    for line in report.unreadable:
        print(f"        not looked at: {line}")
    if report.leftovers:
        done = f"{report.removed} removed" if repair else "fsck --repair removes them"
        print(f"        {len(report.leftovers)} leftover temporary files: {done}")
    if report.stuck:
        return 1
    return 1 if troubles and not (repair and not report.unreadable) else 0


def _print_uploads(report: UploadReport, repair: bool) -> int:
    """The `multipart-uploads` line of fsck; 1 if it failed."""
    status = "ok" if not report.found else ("fix" if repair else "FAIL")
    what = "no unfinished uploads of dead writers in S3 mounts"
    print(f"{status:<4}  {'multipart-uploads':<13} {what}")
    for line in report.found[:20]:
        print(f"        leftover {line}")
    for line in report.unreadable:
        print(f"        not looked at: {line}")
    if report.found:
        done = f"{report.aborted} aborted" if repair else "fsck --repair aborts them"
        print(f"        {len(report.found)} unfinished multipart uploads: {done}")
    return 1 if report.found and not repair else 0

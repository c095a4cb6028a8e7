"""`shoal fsck` and `shoal bench ...`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine import bench_journal
from engine.cli.common import EXIT_FAILED, EXIT_OK, open_engine
from recovery.fsck import run_checks


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "fsck",
        parents=[common],
        help="check the namespace's invariants (offline)",
        description="Opens the home, rebuilds its state and runs named invariant checks on it;"
        " exits 1 listing the checks that fail.",
    )
    p.set_defaults(func=cmd_fsck)

    bench = sub.add_parser("bench", parents=[common], help="benchmarks")
    cmds = bench.add_subparsers(dest="bench_command", metavar="COMMAND", required=True)
    p = cmds.add_parser(
        "journal",
        parents=[common],
        help="durable append rate, replay rate, checkpoint cost, memory per inode",
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
    p.set_defaults(func=cmd_bench_journal)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 2:
        raise argparse.ArgumentTypeError("needs at least 2")
    return value


def cmd_fsck(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        with engine.ns.lock:
            results = run_checks(engine.state)
            inodes, last_seq = engine.state.tree.count, engine.state.last_seq
    failed = [r for r in results if not r.ok]
    for r in results:
        print(f"{'ok' if r.ok else 'FAIL':<4}  {r.check.name:<13} {r.check.description}")
        for failure in r.failures:
            print(f"        {failure}")
        if r.more:
            print(f"        ... and {r.more} more")
    verdict = f"{len(failed)} of {len(results)} checks failed" if failed else "clean"
    print(f"{inodes} inodes at seq {last_seq}: {verdict}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_bench_journal(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.inodes is not None:
        options["inodes"] = args.inodes
    if args.seconds is not None:
        options["seconds"] = args.seconds
    result = bench_journal.run(**options)
    print(json.dumps(result) if args.json else bench_journal.format_table(result))
    return EXIT_OK

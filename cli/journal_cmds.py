"""`shoal journal ...`: checkpoint, replay, dump, verify, repair."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

from cli.common import (
    EXIT_CORRUPT,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_command,
    command_group,
    existing_home,
    locked_journal,
    open_engine,
    whole_number,
)
from cli.output import key_values
from cli.progress import waiting
from engine.home import JOURNAL_DIR
from journal.errors import JournalError
from recovery import dump as dumping
from recovery.inspect import choose_checkpoint, export_checkpoint
from recovery.repair import RepairReport, repair_journal
from recovery.replay import replay_home
from recovery.verify import VerifyReport, verify_journal


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = command_group(sub, common, "journal", "inspect, check and repair the journal")

    add_command(
        cmds, common, "checkpoint", cmd_checkpoint, "write a checkpoint of the current state"
    )

    p = add_command(
        cmds,
        common,
        "replay",
        cmd_replay,
        "rebuild the state from checkpoint + log and print its counts and digest",
        description="Rebuilds the state as start-up does (newest checkpoint, then the log after"
        " it) without writing a checkpoint, and prints what it holds.",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="also replay the whole log from entry 1 (when it is still present) and compare"
        " the two digests; exit 3 if they differ",
    )

    _register_dump(cmds, common)

    add_command(
        cmds,
        common,
        "verify",
        cmd_verify,
        "check every checksum, sequence number and checkpoint, and that the log replays;"
        " exit 3 on the first problem",
        description="Reads every segment from the oldest, decodes every entry, and applies the"
        " entries after the checkpoint start-up would load to its state, as start-up does: an"
        " entry that cannot be applied is reported with its sequence number and why. Every"
        " checkpoint must load and be followed by the log. Changes nothing.",
    )

    p = add_command(
        cmds,
        common,
        "repair",
        cmd_repair,
        "truncate a torn tail; with --force, a way out of every damage verify reports",
        description="Cuts a torn tail off the last segment (a copy is kept). Any other damage"
        " (changed bytes, a zeroed or lost segment, an entry replay cannot apply, a damaged"
        " checkpoint or old history) has a way out that is refused unless --force is given:"
        " the log is cut before the damage, or what only older checkpoints need is set aside;"
        " what would be lost is printed first. Every affected file is copied or renamed aside"
        " (*.broken), never deleted.",
    )
    p.add_argument("--force", action="store_true", help="accept what the printed repair would lose")

    p = add_command(
        cmds,
        common,
        "inspect",
        cmd_inspect,
        "expand a checkpoint into plain SQLite tables (one row per inode, with paths)",
        description="Checkpoints store inodes in compact chunks; this writes the state of one"
        " (the newest that verifies, or --seq) as tables inodes, mounts, blocks, persists and"
        " meta, for SQL queries.",
    )
    p.add_argument("--seq", type=_seq, default=None, help="the checkpoint at this sequence")
    p.add_argument("--out", required=True, metavar="FILE", help="the SQLite file to write")


def _register_dump(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        cmds,
        common,
        "dump",
        cmd_dump,
        "print the log's entries",
        description="Prints the entries of the log, one per line or as an SQLite table. A torn"
        " tail is not dumped: where the valid log ends is said on stderr.",
    )
    p.add_argument(
        "--from",
        dest="from_seq",
        type=_seq,
        default=1,
        metavar="SEQ",
        help="first entry to dump (default: the oldest still in the log)",
    )
    p.add_argument(
        "--to", dest="to_seq", type=_seq, default=None, metavar="SEQ", help="last entry to dump"
    )
    p.add_argument(
        "--type",
        dest="types",
        metavar="T,...",
        help="only these entry types, by name (e.g. MkDir,Rename)",
    )
    p.add_argument("--format", choices=("text", "jsonl", "sqlite"), default="text")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write here instead of stdout (required for"
        " sqlite, whose table `entries` is replaced)",
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    with locked_journal(args) as (home, storage):
        ckpt = choose_checkpoint(storage, JOURNAL_DIR, args.seq)
        if ckpt is None:
            which = f"at seq {args.seq}" if args.seq else "that verifies"
            print(f"shoal: no checkpoint {which} in {home}", file=sys.stderr)
            return EXIT_FAILED
        report = export_checkpoint(storage, ckpt, args.out)
    print(f"wrote {report.inodes} inodes of {report.checkpoint.path} to {report.out}")
    return EXIT_OK


_seq = whole_number(1, "a sequence number", "sequence numbers start at 1")


def _in_home(home: str, path: str) -> str:
    return os.path.join(home, path)


# -- checkpoint and replay ----------------------------------------------------------------------


def cmd_checkpoint(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        inodes = engine.state.tree.count
        with waiting(f"writing a checkpoint of {inodes:,} inodes"):
            ckpt = engine.checkpoint()
    print(f"wrote checkpoint {_in_home(args.resolved_home, ckpt.path)} at seq {ckpt.seq}")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    report = replay_home(existing_home(args), verify=args.verify)  # a typo is not replayed
    c = report.counts
    ckpt = f"{report.checkpoint} (seq {report.checkpoint_seq})" if report.checkpoint else "none"
    rows: list[tuple[str, object]] = [
        ("checkpoint", ckpt),
        ("replayed entries", report.replayed),
        ("last seq", c.last_seq),
        ("inodes", c.inodes),
        ("directories", c.directories),
        ("files", c.files),
        ("symlinks", c.symlinks),
        ("mounts", c.mounts),
        ("blocks", c.blocks),
        ("pending persists", c.pending_persists),
        ("digest", report.digest),
    ]
    full = report.full
    if full is not None:
        if not full.possible:
            rows.append(("full replay", f"not done: {full.note}; nothing compared"))
        elif full.digest == report.digest:
            rows.append(("full replay", f"{full.entries} entries, digest {full.digest}: match"))
        else:
            rows.append(
                (
                    "full replay",
                    f"{full.entries} entries (to seq {full.last_seq}), digest"
                    f" {full.digest}: MISMATCH",
                )
            )
    print(key_values(rows))
    if report.mismatch:
        print(
            "shoal: error: the checkpoint + log state differs from a replay of the whole log;"
            " run `shoal journal verify` and keep a copy of the home for analysis",
            file=sys.stderr,
        )
        return EXIT_CORRUPT
    return EXIT_OK


# -- dump ---------------------------------------------------------------------------------------


def cmd_dump(args: argparse.Namespace) -> int:
    types = None
    if args.types is not None:
        try:
            types = dumping.parse_types(args.types)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.to_seq is not None and args.to_seq < args.from_seq:
        raise UsageError(f"--to {args.to_seq} is before --from {args.from_seq}")
    if args.format == "sqlite" and not args.out:
        raise UsageError("--format sqlite needs --out FILE")
    with locked_journal(args) as (_home, storage):
        stream: IO[str] | None = None
        sink: dumping.SqliteSink | dumping.LineSink
        if args.format == "sqlite":
            sink = dumping.SqliteSink(args.out)
        else:
            stream = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
            fmt = dumping.text_line if args.format == "text" else dumping.jsonl_line
            sink = dumping.LineSink(stream, fmt)
        done: dumping.DumpResult | None = None
        try:
            done = dumping.dump_journal(
                storage,
                JOURNAL_DIR,
                sink,
                from_seq=args.from_seq,
                to_seq=args.to_seq,
                types=types,
            )
        except JournalError:
            print("shoal: note: the dump stops at the damage named below", file=sys.stderr)
            raise
        finally:
            sink.close()
            if stream is not None and stream is not sys.stdout:
                stream.close()
    tail = done.tail
    if tail is not None:
        print(
            f"shoal: note: the log ends in a torn tail at {tail.path} offset {tail.offset}"
            f" ({tail.size - tail.offset} bytes: {tail.reason}); it holds no acknowledged entry"
            " and was not dumped; `shoal journal repair` (or opening the home) truncates it",
            file=sys.stderr,
        )
    if args.verbose:
        span = f" (seq {done.first_seq}..{done.last_seq})" if done.entries else ""
        print(f"shoal: dumped {done.entries} entries{span}", file=sys.stderr)
    return EXIT_OK


# -- verify and repair --------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    with locked_journal(args) as (home, storage):
        report = verify_journal(storage, JOURNAL_DIR)
    print(_verify_text(home, report))
    return EXIT_OK if report.ok else EXIT_CORRUPT


def _verify_text(home: str, r: VerifyReport) -> str:
    lines = []
    problem = r.problem
    if problem is None:
        lines.append(f"journal of {home}: OK")
    elif problem.torn_tail:
        lines.append(f"journal of {home}: TORN TAIL")
    else:
        lines.append(f"journal of {home}: DAMAGED")
    if problem is not None:
        lines.append(f"problem: {problem.describe()}")
        if problem.hint:
            lines.append(f"next: {problem.hint}")
        lines.append("checked before the problem:")
    span = f" (seq {r.first_seq}..{r.last_seq})" if r.entries else ""
    lines.append(f"  segments: {len(r.segments)}")
    lines.append(f"  entries: {r.entries}{span}")
    if r.replay_checked:
        base = r.replay_base
        on = f"checkpoint {base.path} (seq {base.seq})" if base else "the empty state"
        lines.append(f"  replayed: {r.replayed} entries applied on {on}, as start-up applies them")
    else:
        lines.append("  replayed: not done: the log does not continue from the checkpoint")
    if r.by_type:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.by_type.items()))
        lines.append(f"  by type: {counts}")
    lines.append(f"  checkpoints: {len(r.checkpoints)}")
    for ckpt in r.checkpoints:
        lines.append(f"    {ckpt.path} (seq {ckpt.seq})")
    for label, paths in (
        ("stray files (ignored by the journal)", r.strays),
        ("leftovers of an interrupted write (removed at the next open)", r.temporaries),
        ("copies set aside by repair", r.set_aside),
    ):
        if paths:
            lines.append(f"  {label}:")
            lines.extend(f"    {p}" for p in paths)
    return "\n".join(lines)


def cmd_repair(args: argparse.Namespace) -> int:
    with locked_journal(args) as (home, storage):
        report = repair_journal(storage, JOURNAL_DIR, force=args.force)
        after = verify_journal(storage, JOURNAL_DIR) if report.refused is None else None
    print(_repair_text(home, report, args.force))
    if report.refused is not None:
        return EXIT_CORRUPT
    if after is not None and after.problem is not None:
        # Repair fixes the log start-up reads; what is left (damage only an older checkpoint
        # needs, an entry from a newer version) needs an operator.
        print(
            "not repaired: `shoal journal verify` still reports"
            f" {after.problem.describe()}; {after.problem.hint}"
        )
        return EXIT_CORRUPT
    return EXIT_OK


def _repair_text(home: str, r: RepairReport, force: bool) -> str:
    lines = []
    for step in r.steps:
        lines.append(f"repaired {step.describe()}")
        if step.loss_text():
            lines.append(f"  lost: {step.loss_text()}")
        lines.extend(f"  {line}" for line in step.done)
    refused = r.refused
    if refused is None:
        if not r.steps:
            lines.append(f"journal of {home} needs no repair")
        else:
            lines.append(f"journal of {home} repaired")
        return "\n".join(lines)
    lines.append(f"damage: {refused.describe()}")
    if refused.loss_text():
        lines.append(f"a forced repair would lose: {refused.loss_text()}")
    lines.append(f"a forced repair would {refused.plan} (every file it changes is kept as a copy)")
    if not force:
        lines.append(
            "refusing without --force: restore the damaged file from a backup, or run"
            " `shoal journal repair --force` to accept the loss"
        )
    return "\n".join(lines)

"""`shoal fs pin|unpin|free|load` and `shoal report`: the block cache of a home no daemon has
open (the daemon will serve the same commands online)."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from cli import cluster_load, cluster_opts
from cli.cluster_report import cmd_cluster_report
from cli.common import EXIT_FAILED, EXIT_OK, UsageError, add_command, open_engine
from cli.paths import absolute as _abs
from cli.progress import bar as progress_bar
from cli.progress import over
from cli.report_cmd import cmd_report
from engine.engine import Engine
from engine.errors import InvalidArgument, ShoalError
from engine.inode import PERSISTED, Inode
from engine.ttl import parse_duration_ms

LOAD_CHUNK = 4 << 20


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(cmds, common, "pin", cmd_pin, "never evict PATH's cached blocks")
    p.add_argument("path", metavar="PATH")
    p.add_argument("media", nargs="*", metavar="MEDIUM", help="keep them in these tiers only")

    p = add_command(cmds, common, "unpin", cmd_unpin, "let PATH's blocks be evicted again")
    p.add_argument("path", metavar="PATH")

    p = add_command(
        cmds, common, "setttl", cmd_setttl, "expire PATH (and all below it) DURATION from now"
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("duration", metavar="DURATION", help="e.g. 90s, 15m, 12h, 7d")
    p.add_argument(
        "--action",
        choices=["free", "delete"],
        default="free",
        help="free: drop cached data (default); delete: remove from Shoal AND the UFS",
    )

    p = add_command(cmds, common, "unsetttl", cmd_unsetttl, "remove PATH's TTL")
    p.add_argument("path", metavar="PATH")

    p = add_command(
        cmds,
        common,
        "settype",
        cmd_settype,
        "set the read and/or write type of PATH and the tree below it",
        description="A type set on a path applies to it and everything below it, before the"
        " mount's and the global ones (docs/cache.md). 'inherit' removes it.",
    )
    p.add_argument("--read", metavar="TYPE", help="CACHE, CACHE_PROMOTE, NO_CACHE or inherit")
    p.add_argument(
        "--write",
        metavar="TYPE",
        help="MUST_CACHE, CACHE_THROUGH, THROUGH, ASYNC_THROUGH or inherit",
    )
    p.add_argument("path", metavar="PATH")

    add_command(
        cmds,
        common,
        "checkttl",
        cmd_checkttl,
        "act on expired TTLs now (the daemon does it itself)",
    )

    p = add_command(cmds, common, "persist", cmd_persist, "upload cached-only data to its UFS")
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("path", metavar="PATH")

    p = add_command(cmds, common, "free", cmd_free, "drop cached blocks of persisted files")
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("path", metavar="PATH")

    p = add_command(
        cmds, common, "load", cmd_load, "prefetch files into the cache, with a progress bar"
    )
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("--parallel", type=int, default=8, metavar="N", help="files at once")
    p.add_argument("--verify", action="store_true", help="then check every cached block's CRC-32")
    cluster_opts.add_arguments(p, required=False)  # --cluster: loaded by each file's owner
    p.add_argument("path", metavar="PATH")


def register_report(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "report", _report, "the block cache's tiers and counters")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--idle",
        action="store_true",
        help="first wait until directory prefetches and background stores have ended",
    )
    cluster_opts.add_arguments(p, required=False)  # --cluster: the workers, not the home


def _report(args: argparse.Namespace) -> int:
    return cmd_cluster_report(args) if args.cluster else cmd_report(args)


def files_under(engine: Engine, path: str, recursive: bool) -> list[tuple[str, Inode]]:
    node = engine.sync.lookup(path)
    if node.children is None:
        return [(path, node)]
    if not recursive:
        raise InvalidArgument(f"{path} is a directory; use -R")
    out = []
    stack = [path.rstrip("/") or "/"]
    while stack:
        folder = stack.pop()
        for name, child in engine.sync.entries(folder):
            child_path = f"{folder.rstrip('/')}/{name}"
            if child.children is not None:
                stack.append(child_path)
            elif child.kind == "file":
                out.append((child_path, child))
    return sorted(out, key=lambda item: item[0])


def _cache(engine: Engine) -> Any:
    if engine.cache is None:
        raise InvalidArgument("this home has no block cache")
    return engine.cache


def _set_on(engine: Engine, raw_path: str, **changes: Any) -> None:
    """Journals ``changes`` to the path's attributes; a path below a mount that is not known yet
    is looked up in its UFS first."""
    path = _abs(raw_path)
    engine.sync.lookup(path)
    engine.ns.setattr(path, **changes)


def cmd_pin(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        tiers = {t.name for t in _cache(engine).tiers}
        unknown = [m for m in args.media if m not in tiers]
        if unknown:
            raise InvalidArgument(f"no tier named {', '.join(unknown)} (tiers: {sorted(tiers)})")
        _set_on(engine, args.path, pinned=True, media=list(args.media) or None)
    return EXIT_OK


def cmd_unpin(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        _set_on(engine, args.path, pinned=False, media=[])
    return EXIT_OK


def cmd_setttl(args: argparse.Namespace) -> int:
    try:
        ttl_ms = parse_duration_ms(args.duration)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    with open_engine(args) as engine:
        _set_on(engine, args.path, ttl_ms=ttl_ms, ttl_action=args.action)
    return EXIT_OK


def cmd_unsetttl(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        _set_on(engine, args.path, ttl_ms=-1)
    return EXIT_OK


def cmd_settype(args: argparse.Namespace) -> int:
    if args.read is None and args.write is None:
        raise UsageError("give --read TYPE, --write TYPE or both")

    def value(text: str | None) -> str | None:
        return None if text is None else "" if text.lower() == "inherit" else text

    with open_engine(args) as engine:
        engine.fs.set_types(_abs(args.path), value(args.read), value(args.write))
    return EXIT_OK


def cmd_checkttl(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        done = engine.ttl.run_once()
    print(f"{done} expired path(s) acted on")
    return EXIT_OK


def cmd_persist(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        files = files_under(engine, _abs(args.path), args.recursive)
        queued = [(p, n) for p, n in over(files, len(files), "persisting") if engine.fs.persist(n)]
        if engine.persister is not None:
            engine.persister.drain()
        failed = [p for p, n in queued if not n.flags & PERSISTED]
    print(f"{len(queued) - len(failed)} file(s) persisted, {len(failed)} failed")
    for path in failed:
        print(f"failed: {path} (still pending; retried at the next start)", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_free(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        cache = _cache(engine)
        files = files_under(engine, _abs(args.path), args.recursive)
        dropped = sum(cache.free(node.id) for _p, node in over(files, len(files), "freeing"))
    print(f"{dropped} block(s) dropped")
    return EXIT_OK


def cmd_load(args: argparse.Namespace) -> int:
    if args.parallel < 1:
        raise InvalidArgument("--parallel needs at least 1")
    if args.cluster and args.verify:
        raise UsageError("--verify checks this home's cache; with --cluster the workers load")
    with open_engine(args) as engine:
        if args.cluster:
            files = files_under(engine, _abs(args.path), args.recursive)
            return cluster_load.load(args, engine, files)
        cache = _cache(engine)
        files = files_under(engine, _abs(args.path), args.recursive)
        todo = [(p, n) for p, n in files if cache.cached_bytes(n.id, n.version) < n.size]
        skipped = len(files) - len(todo)
        failures: list[str] = []
        failed: set[str] = set()
        total = sum(n.size for _p, n in todo)
        bar = progress_bar(total, f"loading {len(todo)} files", unit="B", unit_scale=True,
                           unit_divisor=1024)  # fmt: skip

        def load(item: tuple[str, Inode]) -> None:
            path, node = item
            for offset in range(0, node.size, LOAD_CHUNK):
                n = len(engine.fs.read(path, offset, LOAD_CHUNK))
                bar.update(n)

        with ThreadPoolExecutor(args.parallel) as pool:
            futures = {pool.submit(load, item): item[0] for item in todo}
            for future in as_completed(futures):
                try:
                    future.result()
                except ShoalError as exc:
                    failures.append(f"{futures[future]}: {exc}")
                    failed.add(futures[future])
        cache.drain()
        for path, node in todo:  # blocks the storer turned away (its queue full), stored now
            if path in failed:
                continue
            try:
                engine.fs.store_missing(node)
            except ShoalError as exc:
                failures.append(f"{path}: {exc}")
        bar.close()
        bad = 0
        if args.verify:
            bad = cache.verify([n.id for _p, n in files])
        print(
            f"{len(todo) - len(failures)} file(s) loaded ({total:,} bytes), {skipped} already"
            f" cached, {len(failures)} failed"
            + (f", {bad} damaged block(s) dropped" if args.verify else "")  # fmt: skip
        )
        for failure in failures:
            print(f"failed: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures or bad else EXIT_OK

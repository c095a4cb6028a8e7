"""`shoal fs pathconf set|unset|list`: per-path defaults (Alluxio's path configuration).

``set PATH key=value ...`` sets defaults for PATH and everything below it, unless a deeper path
says otherwise; ``unset PATH [key ...]`` removes some (none named: all of PATH's); ``list``
shows every configured path, ``list PATH`` what applies at PATH and where each value comes
from. Values are typed as a user writes them (``ttl=7d``, ``sync_interval=never``,
``write_type=async_through``) and journaled in their canonical form (engine/pathconf.py). Like
every `fs` command they run offline or through the daemon serving the home (cli/online.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import EXIT_OK, UsageError, add_command, command_group, open_engine
from cli.output import dumps, safe
from cli.paths import absolute
from engine.errors import InvalidArgument
from engine.pathconf import KEYS
from engine.pathdefaults import normalize, unknown_key
from engine.pathexplain import explain
from engine.ttl import parse_duration_ms

NEVER = ("never", "none", "-1")


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    group = command_group(
        cmds, common, "pathconf", "per-path defaults: read/write type, sync interval, TTL"
    )
    keys = ", ".join(KEYS)
    p = add_command(
        group,
        common,
        "set",
        cmd_set,
        "set defaults for PATH and everything below it",
        description=f"Keys: {keys}. Types by name (CACHE, ASYNC_THROUGH...); sync_interval and"
        " ttl as durations (90s, 15m, 12h, 7d) or never; ttl_action free or delete.",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("pairs", nargs="+", metavar="KEY=VALUE")

    p = add_command(group, common, "unset", cmd_unset, "remove defaults set for PATH")
    p.add_argument("path", metavar="PATH")
    p.add_argument("keys", nargs="*", metavar="KEY", help=f"default: all of PATH's ({keys})")

    p = add_command(
        group, common, "list", cmd_list, "configured paths; with PATH: what applies there, and why"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("path", nargs="?", metavar="PATH")


def canonical(key: str, text: str) -> str:
    """The journal's form of ``text`` typed for ``key`` (the engine checks it again)."""
    if key not in KEYS:
        raise InvalidArgument(unknown_key(key))
    raw = text.strip()
    if key in ("read_type", "write_type"):
        return raw.upper()
    if key == "ttl_action":
        return raw.lower()
    if raw.lower() in NEVER:
        return "-1"
    try:
        ms = parse_duration_ms(raw)
    except ValueError as exc:
        raise InvalidArgument(f"path conf {key}: {exc}") from None
    if key == "ttl":
        return str(ms)
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:g}"


def shown(key: str, value: str) -> str:
    """A canonical value as a user reads it: durations with units, -1 as never."""
    if key not in ("ttl", "sync_interval"):
        return value
    if value == "-1":
        return "never"
    if key == "sync_interval":
        return f"{value}s"
    ms = int(value)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def cmd_set(args: argparse.Namespace) -> int:
    values: dict[str, str] = {}
    for pair in args.pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"{pair!r} is not KEY=VALUE (keys: {', '.join(KEYS)})")
        values[key] = canonical(key, text)
    with open_engine(args) as engine:
        prefix = engine.fs.pathconf.set(absolute(args.path), values)
    print(f"{safe(prefix)}: " + " ".join(f"{k}={shown(k, v)}" for k, v in values.items()))
    return EXIT_OK


def cmd_unset(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        removed = engine.fs.pathconf.unset(absolute(args.path), args.keys)
    print(f"{safe(normalize(absolute(args.path)))}: unset {' '.join(removed)}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        if args.path is None:
            rows = engine.fs.pathconf.listing()
            explained = None
        else:
            interval = engine.sync.interval_s
            explained = explain(engine.fs.placement, absolute(args.path), interval)
    if explained is not None:
        if args.json:
            print(dumps({k: {"value": v, "source": src} for k, v, src in explained}))
        else:
            for key, value, source in explained:
                print(f"{key:<14} {shown(key, value):<16} {safe(source)}")
    elif args.json:
        print(dumps({prefix: conf for prefix, conf in rows}))
    elif not rows:
        print("no path confs (set one with `shoal fs pathconf set PATH key=value`)")
    else:
        for prefix, conf in rows:
            print(safe(prefix) + "  " + " ".join(f"{k}={shown(k, v)}" for k, v in conf.items()))
    return EXIT_OK

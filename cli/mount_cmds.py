"""`shoal fs mount|unmount|mounts`: the mount table of a home that no daemon has open."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import EXIT_OK, UsageError, add_command, open_engine
from cli.output import dumps
from cli.paths import absolute as _abs


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        cmds,
        common,
        "mount",
        cmd_mount,
        "attach a UFS (a local path, file:///PATH, s3://BUCKET[/PREFIX]) at PATH",
        description="Secrets among the options (access_key, secret_key, session_token) are kept"
        " only in <home>/credentials (mode 0600), never in the journal.",
    )
    p.add_argument("path", metavar="PATH", help="an empty directory of the namespace, or /")
    p.add_argument("uri", metavar="UFS_URI")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a mount option, e.g. endpoint=http://127.0.0.1:9000, path_style=true (repeatable)",
    )
    p.add_argument("--readonly", action="store_true", help="refuse every write below PATH")

    p = add_command(cmds, common, "unmount", cmd_unmount, "detach the UFS mounted at PATH")
    p.add_argument("path", metavar="PATH")

    p = add_command(cmds, common, "mounts", cmd_mounts, "list the mount table")
    p.add_argument("--json", action="store_true")


def parse_options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"mount option {item.split('=')[0]!r} is not KEY=VALUE")
        options[key.strip()] = value
    return options


def cmd_mount(args: argparse.Namespace) -> int:
    options = parse_options(args.option)
    with open_engine(args) as engine:
        engine.mounts.mount(_abs(args.path), args.uri, options, readonly=args.readonly)
    return EXIT_OK


def cmd_unmount(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        engine.mounts.unmount(_abs(args.path))
    return EXIT_OK


def cmd_mounts(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        for path, m in engine.mounts.listing():
            if args.json:
                row = {"path": path, "uri": m.uri, "options": m.options, "readonly": m.readonly}
                print(dumps({**row, "has_credentials": bool(m.credential)}))
            else:
                flags = "ro" if m.readonly else "rw"
                opts = ",".join(f"{k}={v}" for k, v in sorted(m.options.items()))
                print(f"{path}\t{m.uri}\t{flags}{',' + opts if opts else ''}")
    return EXIT_OK

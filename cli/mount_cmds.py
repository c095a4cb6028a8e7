"""`shoal fs mount|unmount|mounts`: the mount table of a home that no daemon has open."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from typing import Any

from cli import common, secret_sources
from cli.common import EXIT_OK, UsageError, add_command, open_engine
from cli.output import dumps
from cli.paths import absolute as _abs
from engine.credentials import is_secret_option
from engine.errors import NotFound, ShoalError


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        cmds,
        common,
        "mount",
        cmd_mount,
        "attach a UFS (a local path, file:///PATH, s3://BUCKET[/PREFIX],"
        " az://CONTAINER[/PREFIX], gs://BUCKET[/PREFIX]) at PATH",
        description="Secrets: -o secret_key_file=PATH (a file of mode 0600; the home keeps"
        " its path, never the secret), -o profile=NAME (S3's shared credentials file), or"
        " --secret-key-stdin; a secret given by value (that way, or -o secret_key=VALUE, which"
        " `ps` shows to every user) is kept in <home>/credentials (mode 0600) for the processes"
        " that serve the mount later, never in the journal.",
    )
    p.add_argument(
        "path", metavar="PATH", help="an empty directory of the namespace (made if missing), or /"
    )
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
    secret_sources.add_arguments(p)
    # Secrets the caller gave (read from its standard input): through the admin channel only.
    p.add_argument("--given-secrets", help=argparse.SUPPRESS)
    p.set_defaults(take_secrets=take_secrets)

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


def take_secrets(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """Gathers the secrets where the command is run (its standard input, its files), before it
    may be sent to the daemon serving the home; returns the argv to send, which hands them
    over through the admin channel (a socket only the home's owner can use)."""
    args.gathered = secret_sources.gather(
        parse_options(args.option), stdin_key=args.secret_key_stdin, use_environment=False
    )
    hidden = {k: v for k, v in args.gathered.items() if is_secret_option(k)}
    argv = [a for a in argv if a != "--secret-key-stdin"]
    return argv + ["--given-secrets", json.dumps(hidden)] if hidden else argv


def cmd_mount(args: argparse.Namespace) -> int:
    options = getattr(args, "gathered", None)
    if options is None:
        options = parse_options(args.option)
        if args.given_secrets:
            options.update(json.loads(args.given_secrets))
        options = secret_sources.gather(
            options,
            stdin_key=args.secret_key_stdin,
            use_environment=False,
            quiet=common.ONLINE_ENGINE is not None,  # no argv of ours showed them
        )
    path = _abs(args.path)
    # A new home is begun by its first mount (the seed's one-click `fs mount /s3 s3://...`).
    with open_engine(args, create=True) as engine:
        made = False
        try:
            # Listed afresh: a directory only the store has so far is no point to make.
            engine.sync.lookup(path, 0.0)
        except NotFound:  # as Alluxio's fs mount: the mount point is made (not its parents)
            engine.fs.mkdir(path, 0o755, os.getuid(), os.getgid())
            made = True
        try:
            engine.mounts.mount(path, args.uri, options, readonly=args.readonly)
        except BaseException:
            if made:  # a refused mount leaves the namespace as it found it
                with contextlib.suppress(ShoalError):  # the refusal is what to report
                    engine.fs.delete(path, directory=True)
            raise
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

"""The secrets a mount command is given, gathered where the user runs it (docs/configuration.md,
"Credentials"): from files only their owner can read, standard input, an S3 profile or this
process's AWS_* variables; a value on the command line still works, with a warning, since other
users see it in `ps`. Nothing here passes a secret on in an argv or an environment."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

from cli.common import UsageError
from engine.credentials import (
    FILE_SUFFIX,
    SECRET_KEYS,
    UNLOCKING_KEYS,
    hide_in_process,
    is_secret_option,
    read_secret_file,
    take_environment_secrets,
)

log = logging.getLogger(__name__)

FROM_STDIN = "-"  # -o secret_key=-


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret-key-stdin",
        action="store_true",
        help="read the secret key from standard input, one line (asked for without echo on a"
        " terminal); the same as -o secret_key=-",
    )


def read_stdin(key: str) -> str:
    if sys.stdin is None:
        raise UsageError(f"{key} is to be read from standard input, but there is none")
    if sys.stdin.isatty():
        value = getpass.getpass(f"{key}: ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError(f"no {key} on standard input (one line was expected)")
    return value


def gather(
    options: dict[str, str], *, stdin_key: bool, use_environment: bool, quiet: bool = False
) -> dict[str, str]:
    """``options`` (a mount's UFS options) with their secrets gathered: ``KEY=-`` and
    ``--secret-key-stdin`` read from standard input; ``KEY_file=PATH`` checked now, so that a
    file others can read is refused before anything starts; a value given on the command line
    warned about (unless ``quiet``: the command came through the admin channel, not an argv)
    and blanked in this process's `ps` line. With ``use_environment`` and no secret option nor
    profile, the AWS_* secret variables of this process are taken out of its environment (an
    access key id given as an option wins over AWS_ACCESS_KEY_ID)."""
    out = dict(options)
    if stdin_key:
        if out.get("secret_key", FROM_STDIN) != FROM_STDIN:
            raise UsageError("--secret-key-stdin and -o secret_key=... both give the secret key")
        out["secret_key"] = FROM_STDIN
    visible = [k for k, v in out.items() if k in UNLOCKING_KEYS and v != FROM_STDIN]
    for key, value in sorted(out.items()):
        if key in SECRET_KEYS and value == FROM_STDIN:
            out[key] = read_stdin(key)
        elif is_secret_option(key) and key not in SECRET_KEYS:
            path = os.path.abspath(value)
            read_secret_file(path, key[: -len(FILE_SUFFIX)])  # refused now, not in the daemon
            out[key] = path
    if visible and not quiet:
        hide_in_process(out[k] for k in visible)
        shown = ", ".join(f"-o {k}=..." for k in visible)
        log.warning(
            "%s on the command line is visible to every user of this host (ps, /proc) while"
            " the command runs: give it with -o secret_key_file=PATH (a file of mode 0600),"
            " --secret-key-stdin, -o profile=NAME or the AWS_* environment variables",
            shown,
        )
    unlocked = any(is_secret_option(k) and k.removesuffix(FILE_SUFFIX) in UNLOCKING_KEYS
                   for k in out)  # fmt: skip
    if use_environment and "profile" not in out and not unlocked:
        for key, value in take_environment_secrets().items():
            out.setdefault(key, value)
    return out

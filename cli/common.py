"""What every command shares: exit codes, the home, and opening it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from engine.engine import Engine
from engine.errors import NotFound
from engine.home import JOURNAL_DIR, HomeLock, is_home, resolve_home
from journal.storage import OsStorage

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed (ShoalError and other expected failures)
EXIT_USAGE = 2
EXIT_CORRUPT = 3  # the journal needs an operator: damaged, or written by a newer version
EXIT_LOCKED = 4  # another process has the home open
EXIT_NOT_WRITABLE = 5


class UsageError(Exception):
    """The command line asks for something impossible; exit 2 without a traceback."""


def command_group(sub: Any, common: argparse.ArgumentParser, name: str, help: str) -> Any:
    """``shoal NAME COMMAND ...``: a command whose sub-commands are added to what it returns."""
    group = sub.add_parser(name, help=help, parents=[common])
    return group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def add_command(
    cmds: Any,
    common: argparse.ArgumentParser,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A (sub-)command that runs ``func(args)``, taking the global options too; its own
    arguments are added to the parser it returns."""
    parser: argparse.ArgumentParser = cmds.add_parser(name, parents=[common], help=help, **kwargs)
    parser.set_defaults(func=func)
    return parser


def whole_number(minimum: int, noun: str, too_small: str) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``minimum``; text that is no integer is
    refused as not ``noun``, one below ``minimum`` with ``too_small``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(too_small)
        return value

    return parse


def home_of(args: argparse.Namespace) -> str:
    """The home's absolute path from --home, SHOAL_HOME or the default (engine/home.py);
    remembered for error messages."""
    home = resolve_home(args.home)
    args.resolved_home = home
    return home


def existing_home(args: argparse.Namespace) -> str:
    """Like ``home_of``, for commands that must not create a home: a mistyped path would
    become a new, empty one."""
    home = home_of(args)
    if is_home(home):
        return home
    if not (args.home or os.environ.get("SHOAL_HOME")):
        raise UsageError(
            f"no Shoal home: pass --home DIR or set SHOAL_HOME (the default, {home}, is not"
            " one yet: `shoal init` makes it)"
        )
    raise NotFound(
        f"{home} is not a Shoal home (it has no {JOURNAL_DIR}/ directory): check --home or"
        " SHOAL_HOME, or make one there with `shoal init` or `shoal mount`"
    )


# Set in the daemon: commands that arrive through its admin channel run on its engine.
ONLINE_ENGINE: Engine | None = None


@contextmanager
def open_engine(
    args: argparse.Namespace, *, reconcile: bool = True, create: bool = False
) -> Iterator[Engine]:
    """The home opened for use (exclusive lock, recovery), closed without a final checkpoint:
    a one-shot command appends a handful of entries, and a checkpoint per command would start
    a new segment each time. Count-triggered checkpoints still happen. In the daemon: its own
    engine, left open. Only a command that may begin a home (``create``) makes a new one."""
    if ONLINE_ENGINE is not None:
        args.resolved_home = getattr(ONLINE_ENGINE.storage, "root", None)
        yield ONLINE_ENGINE
        return
    home = home_of(args) if create else existing_home(args)
    engine = Engine.open_home(home, reconcile=reconcile)
    try:
        yield engine
    finally:
        engine.close(checkpoint=False, release_memory=True)  # no RAM held once we exit


@contextmanager
def locked_journal(args: argparse.Namespace) -> Iterator[tuple[str, OsStorage]]:
    """The home's storage, under the home's lock but without recovering its state: for
    commands that read or repair the journal's files and must not race a writer."""
    home = existing_home(args)
    lock = HomeLock(home)
    lock.acquire()
    try:
        yield home, OsStorage(home)
    finally:
        lock.release()

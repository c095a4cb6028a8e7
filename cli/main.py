"""`shoal`: the command line. This module is where every expected failure becomes an exit code
and one line on stderr; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from cli import (
    admin_cmds,
    cache_cmds,
    common,
    daemon_cmds,
    fs_cmds,
    init_cmds,
    journal_cmds,
    online,
    service_cmds,
    stats_cmd,
    tiers_cmd,
    worker_cmds,
)
from cli.common import (
    EXIT_CORRUPT,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_NOT_WRITABLE,
    EXIT_USAGE,
    UsageError,
)
from cli.version import version
from engine.engine import Engine
from engine.errors import HomeLocked, ShoalError
from journal.errors import (
    JournalCorrupt,
    JournalError,
    JournalNotWritable,
    MalformedEntry,
    UnknownEntryType,
)

log = logging.getLogger(__name__)

EPILOG = """\
exit codes:
  0  success
  1  the operation failed (no such file, not empty, ...)
  2  usage error
  3  the journal is damaged or was written by a newer shoal: an operator must act
     (the message names the file, the offset and what to run next)
  4  the home is in use by another process
  5  the home or its journal is not writable by this user

environment:
  SHOAL_HOME  the home directory when --home is not given (default: /var/lib/shoal
              for root, else $XDG_DATA_HOME/shoal or ~/.local/share/shoal)
"""


def _global_options(default_home: object, default_verbose: object) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--home",
        metavar="DIR",
        default=default_home,
        help="the Shoal home (default: $SHOAL_HOME, else see below)",
    )
    options.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default_verbose,
        help="more messages on stderr (repeat for debug)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="Shoal: a journaled, cached POSIX view of remote storage for training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(None, 0)],
    )
    parser.add_argument("--version", action="version", version=f"shoal {version()}")
    # The global options are accepted after any subcommand too (`shoal journal verify --home
    # X`). Subcommands get their own copies whose default is SUPPRESS, so they do not reset
    # what was given before the subcommand (parents share action objects, hence two copies).
    shared = _global_options(argparse.SUPPRESS, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    journal_cmds.register(sub, shared)
    fs_cmds.register(sub, shared)
    admin_cmds.register(sub, shared)
    cache_cmds.register_report(sub, shared)
    tiers_cmd.register(sub, shared)
    daemon_cmds.register(sub, shared, run_in_daemon)
    init_cmds.register(sub, shared)
    service_cmds.register(sub, shared)
    stats_cmd.register(sub, shared)
    worker_cmds.register(sub, shared)
    return parser


class _OneLine(logging.Formatter):
    """`shoal: warning: message`, one line per record; tracebacks only at -vv."""

    def __init__(self, tracebacks: bool) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        text = f"shoal: {record.levelname.lower()}: {_one_line(record.getMessage())}"
        if self.tracebacks and record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(tracebacks=verbose >= 2))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def classify(exc: BaseException) -> int | None:
    """The exit code of an expected failure, or None for a bug."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, HomeLocked):
        return EXIT_LOCKED
    if isinstance(exc, JournalCorrupt | UnknownEntryType | MalformedEntry):
        return EXIT_CORRUPT
    if isinstance(exc, JournalNotWritable | PermissionError):
        return EXIT_NOT_WRITABLE
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return EXIT_NOT_WRITABLE
    if isinstance(exc, ShoalError | JournalError | OSError):
        return EXIT_FAILED
    return None


def describe(exc: BaseException, home: str | None) -> str:
    if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno == errno.EROFS):
        where = exc.filename or home or "the home"
        return (
            f"{where}: {exc.strerror or exc}; the home must be writable by the user running"
            " shoal: fix its ownership or permissions, or use another home"
        )
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, JournalError) and home:
        # Journal messages name files relative to the home; say which home.
        return f"journal of {home}: {exc}"
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    take_secrets = getattr(args, "take_secrets", None)
    if take_secrets is not None:  # read here, where the user typed the command (its stdin)
        try:
            argv = take_secrets(args, argv)
        except Exception as exc:
            if classify(exc) is None:
                raise
            print(f"shoal: error: {_one_line(describe(exc, None))}", file=sys.stderr)
            return classify(exc) or EXIT_FAILED
    forwarded = online.forward(argv, args)
    if forwarded is not None:
        return forwarded
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Runs a parsed command: its exit code, expected failures as one line on stderr."""
    try:
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader of our output went away (`shoal journal dump | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code_for = classify(exc)
        if code_for is None:
            raise
        message = _one_line(describe(exc, getattr(args, "resolved_home", None)))
        print(f"shoal: error: {message}", file=sys.stderr)
        return code_for


def run_in_daemon(argv: list[str], engine: Engine) -> int:
    """The daemon's ``CommandRunner`` (fuse.admin): one command of its admin channel."""
    common.ONLINE_ENGINE = engine
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # argparse has printed why
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if not online.runs_online(args):
            print("shoal: error: this command does not run through the daemon", file=sys.stderr)
            return EXIT_USAGE
        # Only the command's name is logged: its arguments may hold secrets (fs mount -o).
        name = " ".join(
            str(w) for w in (args.command, getattr(args, "fs_command", None)) if w is not None
        )
        log.info("admin channel: shoal %s", name)
        try:
            return run(args)
        except Exception:
            log.exception("admin command %s failed", name)
            print("shoal: error: the command failed in the daemon (see its log)", file=sys.stderr)
            return EXIT_FAILED
    finally:
        common.ONLINE_ENGINE = None


if __name__ == "__main__":
    sys.exit(main())

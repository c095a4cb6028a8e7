"""`shoal init`: makes a new, empty home. Every other command but a mount refuses a directory
that is not a home, so that a mistyped --home or SHOAL_HOME is an error, not a new home."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import EXIT_OK, add_command, home_of, open_engine
from engine.home import is_home


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    add_command(
        sub,
        common,
        "init",
        cmd_init,
        "make a new home (--home, $SHOAL_HOME or the default; see docs/configuration.md)",
    )


def cmd_init(args: argparse.Namespace) -> int:
    home = home_of(args)
    if is_home(home):  # not opened: a daemon may be serving it
        print(f"{home}: already a Shoal home")
        return EXIT_OK
    with open_engine(args, create=True):
        pass  # opening for use lays the home out (journal, lock, first segment)
    print(f"{home}: a new Shoal home")
    return EXIT_OK

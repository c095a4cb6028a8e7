"""`shoal cache clear`: removes a home's cache tiers (the RAM of its MEM tier under /dev/shm
included), for a home no daemon serves."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import EXIT_OK, add_command, command_group, existing_home, open_engine
from engine.cache.release import clear_tiers
from engine.errors import HomeLocked, InvalidArgument
from fuse.mountinfo import shoal_mounts


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = command_group(sub, common, "cache", "the home's cache tiers")
    add_command(
        cmds,
        common,
        "clear",
        cmd_clear,
        "remove the home's cache tiers (offline: refused while it is mounted)",
        description="Drops, journaled, every cached block whose bytes are also in its store,"
        " from every tier, and removes the tier directories (MEM under /dev/shm included)."
        " Blocks not yet persisted are their content's only copy: they are kept. The next"
        " mount reads from the stores again.",
    )


def cmd_clear(args: argparse.Namespace) -> int:
    home = existing_home(args)
    points = sorted(p for p, (h, _dev) in shoal_mounts().items() if h == home)
    if points:
        raise HomeLocked(f"{home} is mounted at {', '.join(points)}: shoal umount it first")
    with open_engine(args) as engine:
        if engine.cache is None:
            raise InvalidArgument(f"{home} has no block cache")
        done = clear_tiers(engine.cache)
    print(f"{done.dropped} block(s) dropped, {done.kept} kept (not yet in their store)")
    for path in done.left:
        print(f"left in place (not empty): {path}")
    for path in done.found:  # there at its first start: its owner chose it, a stop leaves it
        print(f"kept, empty (Shoal did not make it): {path}")
    return EXIT_OK

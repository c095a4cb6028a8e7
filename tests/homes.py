"""Homes that tests make, and the MEM tiers those homes own.

A home with the default tiers keeps its MEM tier on /dev/shm, at a path named after the home's
own path (engine.config.default_tiers): a home in a test's private directory has a MEM tier no
other test or run shares. The autouse fixture in tests/conftest.py removes, after each test,
the MEM tiers of exactly the homes that test made: those in its tmp_path, and those made
elsewhere that it declared with ``track``. Nothing else on /dev/shm is touched.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from engine.config import default_tiers
from engine.home import JOURNAL_DIR

_tracked: set[str] = set()

SsdHome = Callable[..., Path]  # the ssd_home fixture (tests/engine/conftest.py)
Tier = tuple[str, Path, int | str]  # name, directory, quota (bytes, or a size such as "8MiB")


def write_config(
    home: Path, *sections: str, block_size: int | None = None, tiers: Sequence[Tier] | None = None
) -> str:
    """Writes ``home``/shoal.toml: the block size, ``sections`` (TOML text) and one
    [[cache.tiers]] table a tier; returns the home as the engine takes it."""
    lines = [] if block_size is None else [f"block_size = {block_size}"]
    lines += sections
    for name, path, quota in tiers or []:
        lines += ["[[cache.tiers]]", f'name = "{name}"', f'paths = ["{path}"]',
                  f"quota = {json.dumps(quota)}"]  # fmt: skip
    (home / "shoal.toml").write_text("\n".join(lines) + "\n")
    return str(home)


def track(home: str | Path) -> Path:
    """Declares ``home`` (made outside the test's tmp_path) as the running test's own."""
    _tracked.add(os.path.abspath(home))
    return Path(home)


def homes_in(top: Path, depth: int = 3) -> Iterator[str]:
    """The homes (directories holding a journal) at most ``depth`` levels below ``top``; mount
    points are not entered (a test's FUSE mount is not part of its files)."""
    if os.path.isdir(top / JOURNAL_DIR):
        yield str(top)
    if depth == 0:
        return
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and not os.path.ismount(entry.path):
            yield from homes_in(Path(entry.path), depth - 1)


def mem_tiers(homes: Iterable[str]) -> set[str]:
    """The /dev/shm directories the homes' default MEM tiers use."""
    return {
        path
        for home in homes
        for tier in default_tiers(home)
        if tier.name == "MEM"
        for path in tier.paths
    }


def remove_mem_tiers(homes: Iterable[str]) -> None:
    for path in mem_tiers(homes):
        shutil.rmtree(path, ignore_errors=True)


def remove_home(home: str | Path) -> None:
    """Removes a home made outside a test's tmp_path, and its MEM tier."""
    remove_mem_tiers([os.path.abspath(home)])
    shutil.rmtree(home, ignore_errors=True)


def remove_test_mem_tiers(tmp_path: Path) -> None:
    """Removes the MEM tiers of the homes in ``tmp_path`` and of the tracked ones."""
    homes = {*homes_in(tmp_path), *_tracked}
    _tracked.clear()
    remove_mem_tiers(homes)

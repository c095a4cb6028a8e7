"""Where the configured tier directories are, as one absolute path each, and that no two of
them share a directory.

A relative path in shoal.toml is taken from the home: taken from the working directory, as it
was, the daemon started from one directory and a command run from another used two different
directories, and each dropped the other's blocks as missing. Two tier directories that are one
directory (listed twice, or a symbolic link to the other), or one inside the other, each see
the other's blocks as orphans of their own and remove them at every start (reconciliation,
engine/cache/reconcile.py): refused, naming both. So is a tier directory holding the home.
"""

from __future__ import annotations

import dataclasses
import os

from engine.cache.tiers import TIER_MARK, TierSpec
from engine.errors import InvalidArgument


def placed(specs: list[TierSpec], home: str | None) -> list[TierSpec]:
    """``specs`` with every path absolute (a relative one taken from ``home``) and normalized;
    InvalidArgument if two of them overlap, or one holds the home."""
    out = [
        dataclasses.replace(spec, paths=[_absolute(p, home) for p in spec.paths]) for spec in specs
    ]
    _check_apart(out, home)
    return out


def _absolute(path: str, home: str | None) -> str:
    given = os.path.expanduser(path)
    if os.path.isabs(given) or home is None:
        return os.path.normpath(os.path.abspath(given))
    placed_now = os.path.normpath(os.path.join(os.path.abspath(home), given))
    before = os.path.normpath(os.path.abspath(given))  # where it was taken from until now
    if before != placed_now and _holds_blocks(before) and not _holds_blocks(placed_now):
        raise InvalidArgument(
            f"cache tier path {path!r} is relative: it is taken from the home now"
            f" ({placed_now}), but the cached blocks are in {before}, where it was taken from"
            " the working directory before (some may be the only copy of a file); move that"
            " directory there, or give its absolute path ([[cache.tiers]] in shoal.toml)"
        )
    return placed_now


def _holds_blocks(root: str) -> bool:
    """Whether ``root`` is a tier directory with something in it: marked, or holding block
    folders (named by a file id)."""
    try:
        names = os.listdir(root)
    except OSError:
        return False
    return TIER_MARK in names or any(n.isdigit() for n in names)


def _check_apart(specs: list[TierSpec], home: str | None) -> None:
    seen: list[tuple[str, str, str]] = []  # (real path, tier name, path as configured)
    for spec in specs:
        for path in spec.paths:
            real = os.path.realpath(path)
            if home is not None and _within(os.path.realpath(home), real):
                raise InvalidArgument(
                    f"cache tier {spec.name}'s directory {path} holds the home {home}: Shoal"
                    " removes from a tier directory whatever its journal does not list; give"
                    " the tier a directory of its own ([[cache.tiers]] in shoal.toml)"
                )
            for other_real, other_name, other_path in seen:
                if _within(real, other_real) or _within(other_real, real):
                    same = "is" if real == other_real else "overlaps"
                    raise InvalidArgument(
                        f"cache tier {spec.name}'s directory {path} {same} tier {other_name}'s"
                        f" directory {other_path}: each tier directory must be apart from every"
                        " other, or each tier removes the other's blocks as its own orphans"
                        " ([[cache.tiers]] in shoal.toml)"
                    )
            seen.append((real, spec.name, path))


def _within(inner: str, outer: str) -> bool:
    """Whether ``inner`` is ``outer`` or below it (both real, normalized paths)."""
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")

"""Per-path defaults (Alluxio's path configuration): the state and its one change, PathConfSet.

A path conf sets, for a path prefix, defaults that apply to everything below it unless a deeper
prefix says otherwise (longest-prefix match, key by key): the read type, the write type, the
metadata sync interval, a TTL and its action. It is kept by path string, as Alluxio keeps it:
renaming a configured directory leaves its configuration at the old path (and a directory made
there later takes it). How an operation finds its value: engine/pathdefaults.py.

This module is what apply and admission share (engine/state.py, engine/admission.py): the keys,
the canonical form of each value as the journal carries it, and the prefix rule. The command
line turns what a user types into these forms (cli/pathconf_cmds.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine import iotypes
from journal import entries as E

READ_TYPES = tuple(iotypes.READ_TYPES)
WRITE_TYPES = tuple(iotypes.WRITE_TYPES)
TTL_ACTIONS = ("free", "delete")
NAME_MAX = 255


def _one_of(choices: tuple[str, ...]) -> Callable[[str], bool]:
    return lambda value: value in choices


def _seconds(value: str) -> bool:
    """Seconds as a decimal number: -1 (never), 0 (every access) or more."""
    if not value.isascii() or "_" in value or value.strip() != value:
        return False
    try:
        number = float(value)
    except ValueError:
        return False
    return number == -1 or 0 <= number < float("inf")


def _millis(value: str) -> bool:
    """Milliseconds as a decimal integer, or -1: none (a deeper prefix cancelling a TTL)."""
    return value == "-1" or (value.isascii() and value.isdigit())


# key -> (whether a value is its canonical form, what the form is: for messages)
KEYS: dict[str, tuple[Callable[[str], bool], str]] = {
    "read_type": (_one_of(READ_TYPES), "one of " + ", ".join(READ_TYPES)),
    "write_type": (_one_of(WRITE_TYPES), "one of " + ", ".join(WRITE_TYPES)),
    "sync_interval": (_seconds, "seconds: -1 (never), 0 (every access) or more"),
    "ttl": (_millis, "milliseconds, or -1 (none)"),
    "ttl_action": (_one_of(TTL_ACTIONS), "one of " + ", ".join(TTL_ACTIONS)),
}


def prefix_problem(prefix: Any) -> str | None:
    """Why ``prefix`` is no absolute, normalized namespace path ("/", "/a/b": no empty, "." or
    ".." component, no trailing "/", each name storable), or None."""
    if type(prefix) is not str or not prefix.startswith("/"):
        return f"path conf prefix {prefix!r} is not an absolute path"
    if prefix == "/":
        return None
    for name in prefix[1:].split("/"):
        if name in ("", ".", "..") or "\0" in name:
            return f"path conf prefix {prefix!r} is not normalized (no '', '.' or '..' parts)"
        try:
            raw = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return f"path conf prefix {prefix!r} holds characters that stand for no bytes"
        if raw.decode("utf-8", "surrogateescape") != name or len(raw) > NAME_MAX:
            return f"path conf prefix {prefix!r} holds a name that is not storable"
    return None


def value_problem(key: Any, value: Any) -> str | None:
    """Why ``value`` (None: unset) cannot be set for ``key``, or None."""
    rule = KEYS.get(key) if type(key) is str else None
    if rule is None:
        return f"unknown path conf key {key!r} (one of {', '.join(KEYS)})"
    if value is None:
        return None
    if type(value) is not str or not rule[0](value):
        return f"path conf {key} = {value!r} is not valid ({rule[1]})"
    return None


def entry_problem(e: E.PathConfSet) -> str | None:
    """Why apply would refuse ``e``, or None: what apply and admission both judge."""
    problem = prefix_problem(e.prefix)
    if problem is not None:
        return problem
    if type(e.values) is not dict or not e.values:
        return "a PathConfSet sets or unsets at least one key"
    for key, value in e.values.items():
        problem = value_problem(key, value)
        if problem is not None:
            return problem
    return None


class PathConfs:
    """prefix -> {key: canonical value}, as of the state's last entry. ``generation`` moves
    with every change, so a resolution cached from an older table is known stale."""

    __slots__ = ("table", "generation")

    def __init__(self) -> None:
        self.table: dict[str, dict[str, str]] = {}
        self.generation = 0

    def apply(self, e: E.PathConfSet) -> None:
        problem = entry_problem(e)
        if problem is not None:
            raise ValueError(problem)
        conf = dict(self.table.get(e.prefix, {}))
        for key, value in e.values.items():
            if value is None:
                conf.pop(key, None)
            else:
                conf[key] = value
        if conf:
            self.table[e.prefix] = conf
        else:
            self.table.pop(e.prefix, None)
        self.generation += 1

    def rows(self) -> list[tuple[str, dict[str, str]]]:
        """(prefix, its keys sorted) in prefix order: a checkpoint's rows, and the digest's."""
        return [(p, dict(sorted(self.table[p].items()))) for p in sorted(self.table)]

    def load(self, rows: Mapping[str, Mapping[str, str]]) -> None:
        self.table = {prefix: dict(conf) for prefix, conf in rows.items()}
        self.generation += 1

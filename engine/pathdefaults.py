"""Per-path defaults as operations find them, and how they are changed (docs/configuration.md,
"Per-path defaults"; the state and its entry: engine/pathconf.py).

Each key is looked up on its own, longest prefix first: a deeper prefix that sets a key wins,
one that does not set it leaves the shallower one's value in effect. Where a path conf stands
among the other sources (engine/placement.py, engine/sync.py, engine/ttl.py): an explicit option
of the call > the type set on the node or an ancestor by `fs settype` (an attribute of the inode,
which follows renames; a TTL set by `fs setttl`) > the deepest path conf > the mount's option >
the global configuration.

A lookup costs one test while no path conf exists. Otherwise a directory's resolution is worked
out once (each prefix of its path looked up in the table) and kept by inode id until the table
changes (its generation moves) or a directory is renamed (the gate tells us): reads and lookups
below a configured tree do a dict lookup. A file takes its directory's, plus a conf set on its
own path.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from engine.errors import InvalidArgument, NotFound
from engine.inode import ROOT_ID, Inode
from engine.names import check_name, split_path
from engine.namespace import Namespace
from engine.pathconf import KEYS, READ_TYPES, TTL_ACTIONS, WRITE_TYPES, value_problem
from journal import entries as E

Resolution = Mapping[str, tuple[str, str]]  # key -> (value, the prefix it comes from)
EMPTY: Resolution = MappingProxyType({})
CACHE_MAX = 1 << 16  # directories whose resolution is kept; all dropped beyond (then refilled)
_CHOICES = {"read_type": READ_TYPES, "write_type": WRITE_TYPES, "ttl_action": TTL_ACTIONS}


def normalize(path: str) -> str:
    """``path`` as a path conf prefix: absolute, without '.', empty parts or a trailing '/';
    InvalidArgument/InvalidName for one that cannot be (relative, '..', a bad name)."""
    parts = split_path(path)
    for name in parts:
        check_name(name)
    return "/" + "/".join(parts)


def unknown_key(key: str) -> str:
    near = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown path conf key {key!r}{hint}; the keys are: {', '.join(KEYS)}"


def bad_value(key: str, value: str) -> str | None:
    """The message for ``value`` of a known ``key`` that is not valid (the nearest choice
    suggested), or None when it is."""
    problem = value_problem(key, value)
    if problem is None:
        return None
    near = difflib.get_close_matches(value, _CHOICES.get(key, ()), n=1, cutoff=0.5)
    return problem + (f"; did you mean {near[0]!r}?" if near else "")


class PathDefaults:
    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.state = ns.state
        self._cache: dict[int, Resolution] = {}  # directory id -> its resolution
        self._generation = -1  # of the table the cache was filled from
        self._epoch = 0  # moves when a directory is renamed: a resolution under way is stale
        self._leaves: frozenset[str] = frozenset()  # last names of the prefixes
        self._keys: frozenset[str] = frozenset()  # the keys some prefix sets
        ns.gate.observers.append(self._observe)

    def _observe(self, entry: Any) -> None:
        # Even with nothing cached: a resolution under way may have read the old path.
        if type(entry) is E.Rename:
            node = self.ns.tree.find(entry.id)
            if node is not None and node.children is not None:
                self._epoch += 1
                self._cache.clear()

    # -- lookups ---------------------------------------------------------------------------

    def sets(self, key: str) -> bool:
        """Whether some prefix sets ``key``."""
        return any(key in conf for conf in self.state.pathconfs.table.values())

    def value(self, node: Inode, key: str) -> str | None:
        """The path conf value of ``key`` in effect at ``node``, or None. On every lookup's
        path (the sync interval of each directory): a directory resolved before is one dict
        lookup, and a key no prefix sets costs nothing more."""
        confs = self.state.pathconfs
        if not confs.table:
            return None
        if confs.generation == self._generation:
            if key not in self._keys:
                return None
            got = self._cache.get(node.id) if node.children is not None else None
            if got is not None:
                found = got.get(key)
                return None if found is None else found[0]
        found = self.effective(node).get(key)
        return None if found is None else found[0]

    def effective(self, node: Inode) -> Resolution:
        """Every key the path confs set at ``node``, with the prefix each comes from."""
        confs = self.state.pathconfs
        if not confs.table:
            return EMPTY
        if confs.generation != self._generation:
            self._epoch += 1
            self._cache.clear()
            self._leaves = frozenset(p.rpartition("/")[2] for p in confs.table)
            self._keys = frozenset(k for conf in confs.table.values() for k in conf)
            self._generation = confs.generation
        if node.children is not None:
            return self._of_dir(node)
        parent = self.ns.tree.find(node.parent)
        base = EMPTY if parent is None or parent.children is None else self._of_dir(parent)
        if node.name in self._leaves:  # a conf set on this very file's path
            path = self._path(node)
            own = None if path is None else confs.table.get(path)
            if own and path is not None:
                return {**base, **{key: (value, path) for key, value in own.items()}}
        return base

    def for_path(self, path: str) -> Resolution:
        """Every key in effect at the namespace path ``path`` (which need not exist)."""
        table = self.state.pathconfs.table
        out: dict[str, tuple[str, str]] = {}
        prefix = ""
        for name in ["", *split_path(path)]:
            prefix = f"{prefix}/{name}" if name else ""
            conf = table.get(prefix or "/")
            if conf:
                out.update((key, (value, prefix or "/")) for key, value in conf.items())
        return out

    def _of_dir(self, node: Inode) -> Resolution:
        got = self._cache.get(node.id)
        if got is not None:
            return got
        epoch = self._epoch
        path = self._path(node)
        out = EMPTY if path is None else self.for_path(path)
        if epoch == self._epoch:  # no rename began meanwhile: the path was this node's
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[node.id] = out
        return out

    def _path(self, node: Inode) -> str | None:
        """``node``'s path; None for one no longer in the tree (an orphan, a race)."""
        find = self.ns.tree.find
        names = []
        cur: Inode | None = node
        while cur is not None and cur.id != ROOT_ID:
            names.append(cur.name)
            cur = find(cur.parent)
        return None if cur is None else "/" + "/".join(reversed(names))

    # -- changes -----------------------------------------------------------------------------

    def set(self, path: str, values: Mapping[str, str]) -> str:
        """Sets ``values`` (canonical forms, engine/pathconf.py) for the prefix ``path``;
        returns the prefix. Nothing is journaled if a key or value is refused."""
        if not values:
            raise InvalidArgument("give at least one key=value")
        for key, value in values.items():
            if key not in KEYS:
                raise InvalidArgument(unknown_key(key))
            problem = bad_value(key, value)
            if problem is not None:
                raise InvalidArgument(problem)
        prefix = normalize(path)
        self._commit(E.PathConfSet(prefix, dict(values), time.time_ns()))
        return prefix

    def unset(self, path: str, keys: Iterable[str] = ()) -> list[str]:
        """Unsets ``keys`` (none given: every key set) at the prefix ``path``; returns those
        that were set. NotFound if nothing is set there."""
        prefix = normalize(path)
        wanted = list(keys)
        for key in wanted:
            if key not in KEYS:
                raise InvalidArgument(unknown_key(key))
        with self.ns.lock:
            current = self.state.pathconfs.table.get(prefix, {})
            names = [k for k in (wanted or list(current)) if k in current]
            if not names:
                what = ", ".join(wanted) if wanted else "nothing"
                raise NotFound(f"no path conf at {prefix} sets {what}")
            entry = E.PathConfSet(prefix, dict.fromkeys(names), time.time_ns())
            seq = self.ns.gate.commit(entry)
        self.ns.gate.durable(seq)
        return names

    def _commit(self, entry: E.PathConfSet) -> None:
        with self.ns.lock:
            seq = self.ns.gate.commit(entry)
        self.ns.gate.durable(seq)

    def listing(self) -> list[tuple[str, dict[str, str]]]:
        """(prefix, its keys) of every path conf, in prefix order."""
        with self.ns.lock:
            return self.state.pathconfs.rows()

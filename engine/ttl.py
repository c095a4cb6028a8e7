"""Time to live: files and directories that expire.

``setttl PATH DURATION [--action free|delete]`` gives a node a TTL counted from its last change
(ctime: for a TTL just set, from when it was set; a later chmod or rename restarts it). Once it
has passed, the checker acts on the node and everything below it (a directory's TTL applies to
its descendants): ``free`` (the default) drops the cached blocks of persisted files and clears
the TTL; ``delete`` removes the subtree from Shoal and from the UFS, and must be asked for
explicitly. The daemon runs the checker every ``cache.ttl_check_interval_s``; offline,
``shoal fs checkttl`` runs it once.

A path conf's ``ttl`` (engine/pathdefaults.py) is a default for the files below its prefix that
have no TTL of their own: each expires that long after its last change, with the path conf's
``ttl_action``. Nothing is recorded on the file (the prefix's value is what counts, and unsetting
it ends it), so ``free`` acts only on a persisted file that still has cached blocks.
"""

from __future__ import annotations

import logging
import threading
import time

from engine.cache.blockcache import BlockCache
from engine.inode import PERSISTED, S_IFMT, S_IFREG, Inode
from engine.namespace import Namespace
from engine.pathdefaults import PathDefaults
from engine.ufsfirst import UfsFirstChanges

log = logging.getLogger(__name__)

ACTIONS = ("free", "delete")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_ms(text: str) -> int:
    """Milliseconds from "90", "90s", "15m", "12h", "7d", "250ms"."""
    raw = text.strip().lower()
    for unit in ("ms", "s", "m", "h", "d"):
        if raw.endswith(unit):
            number, scale = raw[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = raw, 1
    try:
        value = float(number) * scale * 1000
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 15m, 12h, 7d)") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return int(value)


class TtlChecker:
    def __init__(self, ns: Namespace, changes: UfsFirstChanges, cache: BlockCache | None) -> None:
        self.ns = ns
        self.changes = changes  # a delete reaches the UFS first
        self.cache = cache
        self.defaults = PathDefaults(ns)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def expired(self, now_ns: int | None = None) -> list[tuple[str, Inode, str]]:
        """(path, node, action) of every node whose TTL has passed; the outermost only when
        nested ones expire too (acting on it covers them)."""
        now = time.time_ns() if now_ns is None else now_ns
        out = []
        with self.ns.lock:
            by_conf = self.defaults.sets("ttl")
            for node in self.ns.tree.table:
                if node is None:
                    continue
                if node.ext is not None and node.ext.ttl_ms is not None:
                    ttl_ms, action = node.ext.ttl_ms, node.ext.ttl_action or "free"
                elif by_conf and node.mode & S_IFMT == S_IFREG:
                    found = self._by_conf(node)
                    if found is None:
                        continue
                    ttl_ms, action = found
                else:
                    continue
                if node.ctime + ttl_ms * 1_000_000 <= now:
                    out.append((self.ns.tree.path_of(node), node, action))
        out.sort(key=lambda item: item[0])
        kept: list[tuple[str, Inode, str]] = []
        for item in out:
            if not any(item[0].startswith(k[0].rstrip("/") + "/") for k in kept):
                kept.append(item)
        return kept

    def _by_conf(self, node: Inode) -> tuple[int, str] | None:
        """(TTL, action) a path conf gives file ``node``, if it is one to act on."""
        conf = self.defaults.effective(node)
        ttl = conf.get("ttl")
        if ttl is None or ttl[0] == "-1":
            return None
        action = conf.get("ttl_action", ("free", ""))[0]
        if action == "free" and (not node.flags & PERSISTED or node.id not in self.ns.state.blocks):
            return None  # nothing to free (and an upload pending keeps its only copy)
        return int(ttl[0]), action

    def run_once(self, now_ns: int | None = None) -> int:
        """Acts on every expired node; returns how many."""
        done = 0
        for path, node, action in self.expired(now_ns):
            try:
                if action == "delete":
                    self.changes.delete(path, recursive=True)
                else:
                    self._free(node)
                    if node.ext is not None and node.ext.ttl_ms is not None:  # not a path conf's
                        self.ns.setattr(path, ttl_ms=-1)
                done += 1
                log.info("TTL of %s passed: %s", path, action)
            except Exception as exc:  # one failure must not stop the others
                log.error("TTL action %s on %s failed: %s", action, path, exc)
        return done

    def _free(self, node: Inode) -> None:
        if self.cache is None:
            return
        stack = [node]
        while stack:
            cur = stack.pop()
            if cur.children is not None:
                stack.extend(cur.children.values())
            else:
                self.cache.free(cur.id)

    def start(self, interval_s: float) -> None:
        """Runs the checker every ``interval_s`` in a background thread (the daemon)."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.run_once()

        self._thread = threading.Thread(target=loop, name="ttl-checker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

"""Metadata loading and sync: the namespace follows what the mounted stores hold.

A directory inside a mount is loaded from its UFS the first time it is listed or a name in it
is looked up (lazy load), and listed again when its last load is older than the sync interval:
-1 never, 0 on every access, N seconds; set globally (``ufs.sync_interval``), per mount (the
``sync_interval`` mount option) and per call. ``sync`` forces it. What the UFS shows becomes
journal entries like any other mutation: a new name is a MkDir or a CreateFile plus a
UfsFingerprint; a changed fingerprint is a UfsFingerprint, which starts a new content version
(cached blocks of the old one are dropped and can never be served); a name gone from the UFS is
a Delete, unless Shoal holds data the UFS does not have yet (a file not persisted, or a
directory holding one). A listing is consumed as a stream, in batches: a directory of 100,000
objects never sits in memory as one reply.

When each directory was last loaded is kept in memory only: after a restart every directory is
loaded again on first access (as Alluxio does after a failover), which costs one listing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from engine.errors import InvalidArgument, InvalidName, NotFound
from engine.inode import Inode
from engine.mounts import MountTable, ufs_errors
from engine.names import check_name, split_path
from engine.namespace import Namespace
from engine.state import COMPLETE, PERSISTED, Mount
from journal import entries as E
from ufs.base import UfsStatus
from ufs.base import join as ufs_join
from ufs.errors import UfsNotFound

log = logging.getLogger(__name__)

BATCH = 1000  # UFS entries applied per hold of the namespace lock
PARALLEL_LISTINGS = 8  # directories listed at once by a recursive sync
NEVER = -1.0


class MetadataSync:
    def __init__(
        self, ns: Namespace, mounts: MountTable, interval_s: float = NEVER, block_size: int = 0
    ) -> None:
        self.ns = ns
        self.block_size = block_size
        self.mounts = mounts
        self.interval_s = interval_s
        # (directory id, mount time) -> monotonic time of its last load: a directory mounted
        # again is a new one.
        self._loaded: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()

    # -- where a node lives ------------------------------------------------------------------

    def mount_of(self, node: Inode) -> tuple[Mount, str] | None:
        """The mount holding ``node`` and its path relative to that UFS's root."""
        mounts, tree = self.ns.state.mounts, self.ns.tree
        names: list[str] = []
        cur: Inode | None = node
        while cur is not None:
            mount = mounts.get(cur.id)
            if mount is not None:
                return mount, "/".join(reversed(names))
            if cur.parent == cur.id:
                return None
            names.append(cur.name)
            cur = tree.find(cur.parent)
        return None

    def _interval(self, mount: Mount, override: float | None) -> float:
        if override is not None:
            return override
        raw = mount.options.get("sync_interval")
        if raw is not None:
            try:
                return float(raw)
            except ValueError:
                raise InvalidArgument(
                    f"mount {mount.uri}: sync_interval {raw!r} is not a number of seconds"
                ) from None
        return self.interval_s

    def _due(self, node: Inode, mount: Mount, interval: float) -> bool:
        with self._lock:
            loaded = self._loaded.get((node.id, mount.time))
        if loaded is None:
            return True
        if interval < 0:
            return False
        return time.monotonic() - loaded >= interval

    def needs_load(self, directory: Inode) -> bool:
        """Whether looking into ``directory`` would list it from its UFS first (a call that
        may block); False outside mounts."""
        where = self.mount_of(directory)
        if where is None:
            return False
        mount = where[0]
        return self._due(directory, mount, self._interval(mount, None))

    # -- reading through ---------------------------------------------------------------------

    def lookup(self, path: str, sync_interval: float | None = None) -> Inode:
        """``ns.lookup``, loading directories of mounts on the way as needed. The enclosing
        mount is tracked while descending (one dict lookup per component; this is on every
        read's path)."""
        node = self.ns.tree.root
        mounts = self.ns.state.mounts
        mount = mounts.get(node.id)
        rel = ""
        for name in split_path(path):
            if mount is not None and node.children is not None:
                self._refresh(node, mount, rel, sync_interval)
            nxt = self.ns.tree.child(node, name)
            if nxt is None:
                raise NotFound(f"{path} does not exist")
            node = nxt
            inner = mounts.get(node.id)
            if inner is not None:
                mount, rel = inner, ""
            elif mount is not None:
                rel = ufs_join(rel, name)
        if mount is not None and node.children is not None:
            self._refresh(node, mount, rel, sync_interval)
        return node

    def listdir(self, path: str, sync_interval: float | None = None) -> list[Inode]:
        node = self.lookup(path, sync_interval)
        return self.ns.listdir(self.ns.path_of(node))

    def _refresh(self, node: Inode, mount: Mount, rel: str, override: float | None) -> None:
        if self._due(node, mount, self._interval(mount, override)):
            self._sync_dir(node, mount, rel)

    # -- syncing -----------------------------------------------------------------------------

    def sync(self, path: str, recursive: bool = False) -> int:
        """Brings ``path`` (a directory: its listing; with ``recursive``, every directory
        below too) in step with its UFS now; returns how many entries that took."""
        node = self.lookup(path)
        where = self.mount_of(node)
        if where is None:
            raise InvalidArgument(f"{path} is not inside a mount")
        mount, rel = where
        if node.children is None:
            return self._sync_file(node, mount, rel)
        if not recursive:
            return self._sync_dir(node, mount, rel)
        # Directories are listed in parallel (a LIST costs a round trip on an object store);
        # each one's subdirectories are queued as soon as it is done.
        count = 0
        with ThreadPoolExecutor(PARALLEL_LISTINGS, thread_name_prefix="ufs-sync") as pool:
            pending = {pool.submit(self._sync_subtree_level, node, rel)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    changed, subdirs = future.result()
                    count += changed
                    for child, child_rel in subdirs:
                        pending.add(pool.submit(self._sync_subtree_level, child, child_rel))
        return count

    def _sync_subtree_level(self, node: Inode, rel: str) -> tuple[int, list[tuple[Inode, str]]]:
        where = self.mount_of(node)
        assert where is not None
        changed = self._sync_dir(node, where[0], rel)
        with self.ns.lock:
            subdirs = [
                (child, ufs_join(rel, name))
                for name, child in sorted((node.children or {}).items())
                if child.children is not None and child.id not in self.ns.state.mounts
            ]
        return changed, subdirs

    def _sync_file(self, node: Inode, mount: Mount, rel: str) -> int:
        ufs = self.mounts.connector(mount)
        with ufs_errors():
            try:
                status = ufs.stat(rel)
            except UfsNotFound:  # only this: a missing bucket must not empty the namespace
                return self._commit_all([self._removal(node)] if self._removable(node) else [])
        return self._commit_all(self._changes(node.id, node, status))

    def _sync_dir(self, node: Inode, mount: Mount, rel: str) -> int:
        ufs = self.mounts.connector(mount)
        seen: set[str] = set()
        count = 0
        with ufs_errors():
            stream: Iterator[UfsStatus] = ufs.list(rel)
            batch: list[UfsStatus] = []
            for status in stream:
                batch.append(status)
                if len(batch) >= BATCH:
                    count += self._apply_batch(node, batch, seen)
                    batch = []
            count += self._apply_batch(node, batch, seen)
        ns = self.ns
        seq = 0
        with ns.lock:  # decided and journaled in one hold: nothing can slip in between
            for name, child in sorted((node.children or {}).items()):
                if name not in seen and self._removable(child):
                    seq = ns.gate.commit(self._removal(child))
                    count += 1
        if seq:
            ns.gate.durable(seq)
        with self._lock:
            self._loaded[(node.id, mount.time)] = time.monotonic()
        return count

    def _apply_batch(self, node: Inode, batch: list[UfsStatus], seen: set[str]) -> int:
        ns = self.ns
        seq = 0
        count = 0
        with ns.lock:
            children = node.children
            if children is None:  # replaced by a file meanwhile
                return 0
            for status in batch:
                name = status.name
                try:
                    check_name(name)
                except InvalidName as exc:
                    log.warning("UFS entry %r left out of the namespace: %s", status.path, exc)
                    continue
                seen.add(name)
                existing = children.get(name)
                if existing is not None and existing.id in ns.state.mounts:
                    continue  # a mount point shadows what its parent's UFS holds there
                if existing is not None and (existing.children is not None) != status.is_dir:
                    if not self._removable(existing):
                        continue
                    seq = ns.gate.commit(self._removal(existing))
                    count += 1
                    existing = None
                now = time.time_ns()
                if existing is None:
                    new_id = ns.tree.next_id
                    if status.is_dir:
                        seq = ns.gate.commit(
                            E.MkDir(new_id, node.id, name, 0o755, 0, 0, status.mtime_ns or now)
                        )
                        count += 1
                        continue
                    seq = ns.gate.commit(E.CreateFile(new_id, node.id, name, 0o644, 0, 0, now))
                    count += 1
                    existing = ns.tree.get(new_id)
                for entry in self._changes(existing.id, existing, status):
                    seq = ns.gate.commit(entry)
                    count += 1
        if seq:
            ns.gate.durable(seq)
        return count

    def _changes(self, ino: int, node: Inode, status: UfsStatus) -> list[E.UfsFingerprint]:
        if status.is_dir:
            return []
        if node.flags & COMPLETE and not node.flags & PERSISTED:
            # Shoal holds content the UFS does not have yet (written to the cache, its upload
            # pending or never asked for): what the UFS shows is older, not a change to follow.
            # Taking its fingerprint would mark this content persisted, and a block evicted
            # or missing would then be read back from the older object.
            return []
        known = node.ext.fingerprint if node.ext is not None else None
        if known == status.fingerprint:
            return []
        mtime = status.mtime_ns or time.time_ns()
        now = time.time_ns()
        return [E.UfsFingerprint(ino, status.fingerprint, status.size, mtime, now, self.block_size)]

    def _removable(self, node: Inode) -> bool:
        """A name the UFS no longer shows may leave the namespace only if Shoal holds nothing
        the UFS lacks: a persisted file, or a directory with only such files below it."""
        if node.id in self.ns.state.mounts:
            return False
        if node.children is None:  # a symlink exists only in Shoal: never persisted, kept
            return bool(node.flags & PERSISTED)
        return all(self._removable(child) for child in node.children.values())

    def _removal(self, node: Inode) -> E.Delete:
        return E.Delete(node.id, node.parent, node.name, time.time_ns())

    def _commit_all(self, entries: list[E.Delete] | list[E.UfsFingerprint]) -> int:
        # Only for a single file's entries, decided from one inode without a listing.
        if not entries:
            return 0
        ns = self.ns
        seq = 0
        with ns.lock:
            for entry in entries:
                seq = ns.gate.commit(entry)
        ns.gate.durable(seq)
        return len(entries)

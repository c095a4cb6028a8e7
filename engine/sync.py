"""Metadata loading and sync: the namespace follows what the mounted stores hold.

A directory inside a mount is loaded from its UFS the first time it is listed or a name in it
is looked up (lazy load), and listed again when its last load is older than the sync interval:
-1 never, 0 on every access, N seconds; set globally (``ufs.sync_interval``), per mount (the
``sync_interval`` option), per path (`fs pathconf`), per call; ``sync`` forces it. The UFS's
view becomes journal entries like any other mutation: a new name is a MkDir or CreateFile plus
a UfsFingerprint; a changed fingerprint is a UfsFingerprint, which starts a new content version
(cached blocks of the old one are dropped and can never be served); a name gone from the UFS is
a Delete, unless Shoal holds data the UFS does not have yet (a file not persisted, or a
directory holding one). A listing is consumed as a stream, in batches: a directory of 100,000
objects never sits in memory as one reply.

A completed listing is journaled too, as the directory's own UfsFingerprint: a listing mark
naming the mount it was listed from and when (wall-clock, so it outlives a restart). After a
restart a loaded directory is therefore served from the journal, as Alluxio's master serves the
metadata it holds, and the sync interval, counted from that mark, decides when to list it again.
While its store is unreachable a due directory that was loaded before keeps its listing (stale
while unavailable); the failed look is not repeated on every call but after ``retry_after_s``,
at the next access. A directory never loaded has nothing to serve: it answers ``Unavailable``.

A stop that did not close the home (kill -9, a power loss) may have cut a change that reached a
store before its journal entry (engine/ufsfirst.py, THROUGH writes): only a listing finds it.
So after one, every directory listed before it (its mark older than ``relist_before``,
engine/home.py) is due once more at its first access, whatever the interval; that listing is
marked, and the interval decides again from there. While its store is down it keeps its
listing, as any due directory does.

A name loaded from a store gets the store's owner and permission bits (docs/mount.md): where it
keeps none (an S3 object without POSIX metadata), 0644 for a file and 0755 for a directory,
owned by root. A later listing that finds them changed journals a SetAttr, unless the file holds
content the store does not have yet (its upload will carry the namespace's). The mount's root
takes its attributes from the store's root at each of its listings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from engine.errors import InvalidArgument, InvalidName, NotFound, Unavailable
from engine.inode import S_IFMT, S_IFREG, Inode
from engine.listingmarks import listing_mark, parse_listing_mark
from engine.mounts import MountTable, ufs_errors
from engine.movestate import moved_away, moving
from engine.names import check_name, split_path
from engine.namespace import Namespace
from engine.nodechecks import xattr_problem
from engine.state import COMPLETE, PERSISTED, Mount
from engine.storeattrs import attr_change, attrs_of, new_copy
from journal import entries as E
from ufs.base import UfsStatus
from ufs.base import join as ufs_join
from ufs.errors import UfsNotFound

log = logging.getLogger(__name__)

BATCH = 1000  # UFS entries applied per hold of the namespace lock
PARALLEL_LISTINGS = 8  # directories listed at once by a recursive sync
NEVER = -1.0
RETRY_AFTER_S = 5.0  # a store that failed a listing is not asked again before this


class MetadataSync:
    def __init__(
        self, ns: Namespace, mounts: MountTable, interval_s: float = NEVER, block_size: int = 0
    ) -> None:
        self.ns = ns
        self.block_size = block_size
        self.mounts = mounts
        self.interval_s = interval_s
        self.retry_after_s = RETRY_AFTER_S
        # Wall-clock ns of the start after an unclean stop: listings marked before it may have
        # missed a change cut between its store step and its entry (None: there was none).
        self.relist_before: int | None = None
        # (directory id, mount time) found listed after it: asked on every access, its mark is
        # parsed once (a set's add and membership need no lock of ours).
        self._since_stop: set[tuple[int, int]] = set()
        # (directory id, mount time) -> monotonic time of its last load, in this process or
        # (from its listing mark) before it: a directory mounted again is a new one.
        self._loaded: dict[tuple[int, int], float] = {}
        # (mount id, mount time) -> (monotonic time its store last failed a listing, why, whether
        # a caller is looking again now)
        self._down: dict[tuple[int, int], tuple[float, str, bool]] = {}
        self._lock = threading.Lock()
        # Completes the pending store moves of a mount before it is listed (engine/storemove.py;
        # set by the file system): None where nothing is wired (inspection, tests of sync).
        self.settle_moves: Callable[[Mount], None] | None = None
        # A directory's per-path default of a key (engine/pathdefaults.py; set by placement).
        self.path_value: Callable[[Inode, str], str | None] = lambda node, key: None
        # An explicit sync's look at what a listing does not read (engine/provisional.py).
        self.reread: Callable[[Inode, Mount, str], int] | None = None

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

    def _interval(self, mount: Mount, override: float | None, node: Inode | None = None) -> float:
        if override is not None:
            return override
        raw = None if node is None else self.path_value(node, "sync_interval")
        raw = raw or mount.options.get("sync_interval")
        if raw is not None:
            try:
                return float(raw)
            except ValueError:
                raise InvalidArgument(
                    f"mount {mount.uri}: sync_interval {raw!r} is not a number of seconds"
                ) from None
        return self.interval_s

    def _last_load(self, node: Inode, mount: Mount) -> float | None:
        """Monotonic time of the directory's last load from ``mount``; None if it never was.
        A load before a restart is known from the directory's listing mark."""
        key = (node.id, mount.time)
        loaded = self._loaded.get(key)  # a dict get is atomic: every lookup reads, unlocked
        if loaded is not None:
            return loaded
        ext = node.ext
        mark = parse_listing_mark(ext.fingerprint if ext is not None else None)
        if mark is None or mark[0] != mount.time:
            return None
        age_s = max(0, time.time_ns() - mark[1]) / 1e9  # a clock set back: listed just now
        with self._lock:
            return self._loaded.setdefault(key, time.monotonic() - age_s)

    def _before_unclean_stop(self, node: Inode, mount: Mount) -> bool:
        """Whether ``node``'s last listing from ``mount`` predates an unclean stop (and has
        not been repeated since): the store may hold changes its journal never got."""
        before = self.relist_before
        key = (node.id, mount.time)
        if before is None or key in self._since_stop:
            return False
        ext = node.ext
        mark = parse_listing_mark(ext.fingerprint if ext is not None else None)
        if mark is None or mark[0] != mount.time:
            return False  # never listed from this mount: due anyway, and marked when it is
        if mark[1] < before:
            return True
        self._since_stop.add(key)
        return False

    def _due(self, node: Inode, mount: Mount, interval: float) -> bool:
        loaded = self._last_load(node, mount)
        if loaded is None or self._before_unclean_stop(node, mount):
            return True
        if interval < 0:
            return False
        return time.monotonic() - loaded >= interval

    def _backing_off(self, mount: Mount, claim: bool = False) -> str | None:
        """Why ``mount``'s store failed, while it is not to be asked again; else None. Once the
        back-off is over one caller looks again (``claim``: this one) while the others keep
        being answered from what was loaded: a store that hangs holds one caller, not all."""
        key = (mount.id, mount.time)
        with self._lock:
            down = self._down.get(key)
            if down is None:
                return None
            failed_at, why, looking = down
            if looking or time.monotonic() - failed_at < self.retry_after_s:
                return why
            if claim:
                self._down[key] = (failed_at, why, True)
            return None

    def needs_load(self, directory: Inode) -> bool:
        """Whether looking into ``directory`` would list it from its UFS first (a call that
        may block); False outside mounts, and for a loaded directory whose store failed a
        moment ago (it is answered from what was loaded)."""
        mount = self.mounts.mount_of(directory.id)  # on every lookup: no path joined
        if mount is None:
            return False
        if not self._due(directory, mount, self._interval(mount, None, directory)):
            return False
        return self._backing_off(mount) is None or self._last_load(directory, mount) is None

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

    def entries(self, path: str, sync_interval: float | None = None) -> list[tuple[str, Inode]]:
        """(name, inode) of ``path``'s entries, loaded as ``listdir`` loads them."""
        node = self.lookup(path, sync_interval)
        return self.ns.entries(self.ns.path_of(node))

    def _refresh(self, node: Inode, mount: Mount, rel: str, override: float | None) -> None:
        if self._due(node, mount, self._interval(mount, override, node)):
            if override is None:
                self._load(node, mount, rel)
            else:  # a listing asked for by this call (`fs ls --sync`): its failure is reported
                self._sync_dir(node, mount, rel)

    def _load(self, node: Inode, mount: Mount, rel: str) -> None:
        """Lists a due directory; stale while unavailable: if the store cannot be reached, a
        directory loaded before keeps what it holds (its blocks may all be cached), and the
        store is asked again only after ``retry_after_s``, at the next access."""
        key = (mount.id, mount.time)
        failed = self._backing_off(mount, claim=True)
        if failed is None:
            try:
                self._sync_dir(node, mount, rel)
                return
            except Unavailable as exc:
                failed = str(exc)
                with self._lock:
                    self._down[key] = (time.monotonic(), failed, False)
                if self._last_load(node, mount) is None:
                    raise
                log.warning("%s: serving its last listing: %s", self.ns.path_of(node), failed)
                return
            except BaseException:
                with self._lock:  # the store answered (access denied, say): it is not down
                    self._down.pop(key, None)
                raise
        if self._last_load(node, mount) is None:
            raise Unavailable(
                f"{self.ns.path_of(node)} was never listed from {mount.uri}, which is"
                f" unreachable ({failed}); asked again {self.retry_after_s:g} s after it failed"
            )

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
            return self._sync_dir(node, mount, rel) + self._reread(node, mount, rel)
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
        changed = self._sync_dir(node, where[0], rel) + self._reread(node, where[0], rel)
        with self.ns.lock:
            subdirs = [
                (child, ufs_join(rel, name))
                for name, child in sorted((node.children or {}).items())
                if child.children is not None and child.id not in self.ns.state.mounts
            ]
        return changed, subdirs

    def _reread(self, node: Inode, mount: Mount, rel: str) -> int:
        return self.reread(node, mount, rel) if self.reread is not None else 0

    def _sync_file(self, node: Inode, mount: Mount, rel: str) -> int:
        ufs = self.mounts.connector(mount)
        with ufs_errors():
            try:
                status = ufs.stat(rel)
            except UfsNotFound:  # only this: a missing bucket must not empty the namespace
                removal = self._removal(node, node.parent, node.name)
                return self._commit_all([removal] if self._removable(node) else [])
        return self._commit_all(self._changes(node.id, node, status))

    def _sync_dir(self, node: Inode, mount: Mount, rel: str) -> int:
        ufs = self.mounts.connector(mount)
        if self.settle_moves is not None and self.ns.state.store_moves:
            self.settle_moves(mount)
        with self.ns.lock:
            if moving(self.ns.state, node):
                return 0  # its content is still (partly) at its old path: listed once moved
            # Old paths of pending moves: never loaded as new files, nor removed below.
            seen = set(moved_away(self.ns.state, self.mount_of, mount.id, rel))
        skip = frozenset(seen)
        count = 0
        mtime = node.mtime  # the store's (from the listing above): loading its names moves it
        with ufs_errors():
            # The mount's root has no listing above it to bring its owner and mode.
            own = ufs.stat(rel) if not rel else UfsStatus(rel, True, 0, 0, "")
            stream: Iterator[UfsStatus] = ufs.list(rel)
            batch: list[UfsStatus] = []
            for status in stream:
                batch.append(status)
                if len(batch) >= BATCH:
                    count += self._apply_batch(node, batch, seen, skip)
                    batch = []
            count += self._apply_batch(node, batch, seen, skip)
        ns = self.ns
        seq = 0
        remark = self._remark(node, mount)
        with ns.lock:  # decided and journaled in one hold: nothing can slip in between
            for name, child in sorted((node.children or {}).items()):
                if name in seen or child.parent != node.id or child.name != name:
                    continue  # a hard link's other name follows its file (engine/links.py)
                if self._removable(child):
                    seq = ns.gate.commit(self._removal(child, node.id, name))
                    count += 1
            # Not counted as a change found: mostly the directory's own mtime put back.
            changed = attr_change(node, own, mtime) if ns.tree.find(node.id) is node else None
            if changed is not None:
                seq = ns.gate.commit(changed)
            if remark and ns.tree.find(node.id) is node and node.children is not None:
                # Only a listing that ran to its end is marked: one cut short is listed again.
                now = time.time_ns()
                # Not before the unclean stop's boundary even with a clock set back: else the
                # directory would look unlisted since and be listed at every start.
                mark = listing_mark(mount.time, max(now, self.relist_before or 0))
                seq = ns.gate.commit(E.UfsFingerprint(node.id, mark, node.size, node.mtime, now))
        if seq:
            ns.gate.durable(seq)
        with self._lock:
            self._loaded[(node.id, mount.time)] = time.monotonic()
            self._down.pop((mount.id, mount.time), None)
        return count

    def _remark(self, node: Inode, mount: Mount) -> bool:
        """Whether a listing of ``node`` just done is journaled: the first from this mount, and
        each one when the interval counts from it (the mark's time decides after a restart);
        with -1 or 0 the time does not matter, and a listing on every access must not append
        an entry every time. One that predates an unclean stop is marked anew: it is listed
        once more, not at every start."""
        ext = node.ext
        mark = parse_listing_mark(ext.fingerprint if ext is not None else None)
        if mark is None or mark[0] != mount.time or self._before_unclean_stop(node, mount):
            return True
        return self._interval(mount, None, node) > 0

    def _apply_batch(
        self, node: Inode, batch: list[UfsStatus], seen: set[str], skip: frozenset[str]
    ) -> int:
        ns = self.ns
        seq = 0
        count = 0
        # The batch's entries to the journal's writer in one write, not a write and wake-up each.
        with ns.lock, ns.gate.batched():
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
                if name in skip:
                    continue
                existing = children.get(name)
                if existing is not None and existing.id in ns.state.mounts:
                    continue  # a mount point shadows what its parent's UFS holds there
                if existing is not None and (existing.children is not None) != status.is_dir:
                    if not self._removable(existing):
                        continue
                    seq = ns.gate.commit(self._removal(existing, node.id, name))
                    count += 1
                    existing = None
                now = time.time_ns()
                if existing is None:
                    new_id = ns.tree.next_id
                    seq = ns.gate.commit(_creation(new_id, node.id, name, status, now))
                    count += 1
                    existing = ns.tree.get(new_id)
                elif existing.parent != node.id or existing.name != name:
                    continue  # a hard link's other name: the file follows its own (links.py)
                for change in self._changes(existing.id, existing, status):
                    seq = ns.gate.commit(change)
                    count += 1
                for setting in _xattr_changes(existing, status, now):
                    seq = ns.gate.commit(setting)
                    count += 1
        if seq:
            ns.gate.durable(seq)
        return count

    def _changes(
        self, ino: int, node: Inode, status: UfsStatus
    ) -> list[E.UfsFingerprint | E.SetAttr]:
        changed = attr_change(node, status)
        attrs: list[E.UfsFingerprint | E.SetAttr] = [changed] if changed is not None else []
        if status.is_dir:
            return attrs
        if node.id in self.ns.state.store_moves:
            return []  # its content is still at its old path: what is here is not it
        known = node.ext.fingerprint if node.ext is not None else None
        regular = node.mode & S_IFMT == S_IFREG  # a special file has no content to be ahead
        if regular and not node.flags & PERSISTED and (node.flags & COMPLETE or known):
            # Shoal holds content the UFS does not have yet (written to the cache, its upload
            # pending or never asked for), or a file not yet written was renamed over one whose
            # copy the store still holds (Rename.stale): what the UFS shows is older, not a
            # change to follow. Taking its fingerprint would mark this content persisted, and a
            # block evicted or missing would then be read back from the older object.
            return []
        if known == status.fingerprint:
            return attrs
        return new_copy(node, status, self.block_size, attrs)

    def _removable(self, node: Inode) -> bool:
        """A name the UFS no longer shows may leave the namespace only if Shoal holds nothing
        the UFS lacks: a persisted file, or a directory with only such files below it."""
        if node.id in self.ns.state.mounts or node.id in self.ns.state.store_moves:
            return False  # a mount point, or content still at its old path in the store
        if node.children is None:  # a symlink exists only in Shoal: never persisted, kept
            return bool(node.flags & PERSISTED)
        return all(self._removable(child) for child in node.children.values())

    def _removal(self, node: Inode, parent: int, name: str) -> E.Delete:
        """The Delete of one name of ``node`` (a hard-linked file keeps its others)."""
        return E.Delete(node.id, parent, name, time.time_ns())

    def _commit_all(self, entries: Sequence[E.Delete | E.UfsFingerprint | E.SetAttr]) -> int:
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


def _creation(
    new_id: int, parent: int, name: str, status: UfsStatus, now: int
) -> E.MkDir | E.CreateFile:
    """The entry that makes the name a listing found: with the store's owner and mode
    (engine/storeattrs.py), a special file's type and rdev (engine/links.py)."""
    mode, uid, gid = attrs_of(status)
    if status.is_dir:
        return E.MkDir(new_id, parent, name, mode, uid, gid, status.mtime_ns or now)
    mode |= status.special
    return E.CreateFile(new_id, parent, name, mode, uid, gid, now, status.rdev)


def _xattr_changes(node: Inode, status: UfsStatus, now: int) -> list[E.SetXattr]:
    """The user.* attributes a listing found on a name, where the store's copy is the one that
    counts (a directory, or a file whose content is the store's); none where it did not look."""
    found = status.xattrs
    if found is None or (node.children is None and not node.flags & PERSISTED):
        return []
    have = node.ext.xattrs if node.ext is not None and node.ext.xattrs else {}
    out = [E.SetXattr(node.id, name, None, now) for name in have if name not in found]
    for name, value in found.items():
        if have.get(name) != value and xattr_problem(node, name, bytes(value)) is None:
            out.append(E.SetXattr(node.id, name, bytes(value), now))
    return out

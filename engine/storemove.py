"""Pending store moves: the store's part of a rename below a mount, carried out after the
Rename is journaled and ended by a StoreMoved.

A persisted file's content lives in its store under its path, so a rename must move it there
too. Moved before the entry, a kill between the two would leave a journal naming the file at
its old path and a store holding it at the new one: the next listing drops the file (persisted,
gone from the store) and loads the new path as another file, or, over a file whose content is
only in the cache, hides the moved content under that file's name — acknowledged data visible
nowhere, and back as soon as that file is deleted. So the Rename carries ``store_from`` (the
store path the content is still at), apply records the *pending move* (journal/entries.py,
engine/state.py), and only then is the store changed; a StoreMoved ends it. A directory's
rename is one entry too: the directory and every persisted file below it are pending, each
file's move is completed and journaled on its own, then the directory's (its new directories
made, its old ones removed).

Until its StoreMoved a pending file is read from its old path (engine/placement.py), and no
listing drops it, takes the copy at its new path for its content, or loads its old path as a
new file; a directory whose move is pending is not listed (its new path holds nothing yet),
only what it holds is served (engine/sync.py, engine/movestate.py). Pending moves are
completed right after their entry, at every start (before any listing or upload), before any
listing of their mount, and before a rename or delete of what they move; a change that would
write, make or remove at a path a pending move still has content at (a THROUGH write, a
mkdir, a rename's destination, an upload) waits for it, and fails (Unavailable) while the
store cannot complete it.

Completing one is idempotent, so a kill anywhere in it is harmless: the store holds the
content at the old path (the fingerprint recorded at the rename) → moved, or removed if the
file's content changed since (its new content reaches the new path by its own upload); already
at the new path (the file's fingerprint; or, gone from the old path, a file of its size at the
new one: a store whose copy changes the fingerprint) → only journaled; neither → it cannot
complete, is reported (`shoal fsck`, check ``store-moves`` and the ``stores`` line) and left
pending: the file reads EIO until it is deleted or rewritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

from engine.errors import ShoalError, Unavailable
from engine.inode import Inode
from engine.mounts import MountTable, ufs_errors
from engine.namespace import Namespace
from engine.state import PERSISTED, Mount
from engine.sync import MetadataSync
from journal import entries as E
from ufs.base import UfsAttrs, UfsStatus, UnderFS
from ufs.base import join as ufs_join
from ufs.errors import UfsNotEmpty, UfsNotFound

log = logging.getLogger(__name__)

Move = tuple[str, str]  # (old store path, fingerprint recorded at the rename)


def _stat(connector: UnderFS, path: str) -> UfsStatus | None:
    try:
        return connector.stat(path)
    except UfsNotFound:
        return None


def move_file(
    connector: UnderFS, old: str, new: str, recorded: str, current: str | None, size: int
) -> str | None:
    """The store's part of one file's pending move; ``current``: the file's fingerprint now if
    it is persisted, else None; ``size``: its size. Returns why it cannot complete, None once
    it has."""
    if old == new:
        return None  # renamed back to where its content is
    at_old = _stat(connector, old)
    is_file = at_old is not None and not at_old.is_dir
    if at_old is not None and is_file and at_old.fingerprint == recorded:
        if current == recorded:
            connector.rename(old, new)
        else:  # its content changed since the rename: the old copy is superseded
            connector.delete(old)
        return None
    if current is None:
        return None  # its old copy is gone (or not its own): nothing of it is left to move
    at_new = _stat(connector, new)
    if at_new is not None and not at_new.is_dir and at_new.fingerprint == current:
        return None  # moved before a stop cut its StoreMoved
    if at_new is not None and not at_new.is_dir and at_old is None and at_new.size == size:
        # Moved too, by a store whose copy does not keep the fingerprint (S3's multipart copy
        # of a large object gets a new ETag): the next listing takes the new one.
        return None
    if is_file and current == recorded:
        # Rewritten at the old path by another writer since Shoal last saw it: still the
        # file's copy, moved as the store rename before the entry always moved it.
        connector.rename(old, new)
        return None
    return (
        f"the store holds its content ({current!r}) neither at {old!r}, where the rename left"
        f" it, nor at {new!r}"
    )


def finish_dir(connector: UnderFS, old: str, new: str, subdirs: list[tuple[str, UfsAttrs]]) -> None:
    """A directory's move once the files below it are moved: its directories made at the new
    path with their owners and modes (an object store keeps empty ones as markers), the old
    ones removed."""
    for rel, attrs in subdirs:  # parents first
        path = ufs_join(new, rel) if rel else new
        connector.mkdir(path, attrs)
        _keep_attrs(connector, path, attrs)
    if old == new:
        return  # renamed back: its directories are where they were
    for rel, _attrs in reversed(subdirs):
        try:
            connector.rmdir(ufs_join(old, rel) if rel else old)
        except UfsNotFound:
            pass  # already removed, or never made
        except UfsNotEmpty:  # files Shoal never listed: left where they are, under the old name
            log.warning("%s: not empty after its move, left in the store", ufs_join(old, rel))


def _keep_attrs(connector: UnderFS, path: str, attrs: UfsAttrs) -> None:
    """A directory the moves of its files made already (a local store makes a moved file's
    missing parents with its defaults: root's, 0755) gets its owner and mode all the same, or
    a listing would show a private directory widened. One that has them (S3: the marker just
    put) is left as it is."""
    st = connector.stat(path)
    if (st.mode, st.uid, st.gid) != (attrs.mode, attrs.uid, attrs.gid):
        connector.set_attrs(path, attrs)


def _subdirs(node: Inode) -> list[tuple[str, UfsAttrs]]:
    """Paths of ``node``'s directories relative to it, parents first ("" is ``node``), with
    the owner and mode each keeps in the store."""
    out: list[tuple[str, UfsAttrs]] = []
    stack = [(node, "")]
    while stack:
        cur, rel = stack.pop()
        out.append((rel, UfsAttrs(cur.mode & 0o7777, cur.uid, cur.gid)))
        for name, child in sorted((cur.children or {}).items(), reverse=True):
            if child.children is not None:
                stack.append((child, ufs_join(rel, name) if rel else name))
    return out


class StoreMoves:
    def __init__(self, ns: Namespace, sync: MetadataSync, mounts: MountTable) -> None:
        self.ns = ns
        self.sync = sync
        self.mounts = mounts
        # Keeps the persister off a file while its move runs (engine/ufsfirst.py sets it).
        self.holding: Callable[[Inode], AbstractContextManager[None]] = lambda n: nullcontext()
        # Moves found unable to complete, not tried again until a start (or a change to them).
        self._stuck: dict[int, Move] = {}

    # -- which ---------------------------------------------------------------------------------

    def _pending(self, mount: Mount | None, below: Iterable[Inode] = ()) -> list[int]:
        """With the lock held: the pending moves in ``mount`` (or all), or below the nodes
        ``below``; files first, then directories, deepest first."""
        tree, roots = self.ns.tree, list(below)
        keys = []
        for ino, (old, _fp) in self.ns.state.store_moves.items():
            node = tree.find(ino)
            if node is None:
                continue
            if roots and not any(tree.is_ancestor(r.id, node) for r in roots):
                continue
            if mount is not None:
                where = self.sync.mount_of(node)
                if where is None or where[0].id != mount.id:
                    continue
            keys.append((node.children is not None, -old.count("/"), ino))
        return [ino for _d, _depth, ino in sorted(keys)]

    def has_pending(self, *nodes: Inode | None) -> bool:
        roots = [n for n in nodes if n is not None]
        if not roots or not self.ns.state.store_moves:
            return False
        with self.ns.lock:
            return bool(self._pending(None, roots))

    # -- completing ------------------------------------------------------------------------------

    def settle(
        self, mount: Mount | None = None, *, below: Iterable[Inode] = (), force: bool = False,
        only: Callable[[int, str], bool] | None = None,
    ) -> list[str]:  # fmt: skip
        """Completes the pending moves of ``mount`` (all: None; or those ``below`` nodes; or
        those of ids and old paths ``only`` accepts); ``force`` tries the ones found stuck
        before too. Returns why each that cannot complete cannot; raises the engine's error
        (Unavailable…) when a store fails."""
        if not self.ns.state.store_moves:
            return []
        with self.ns.lock:
            ids = self._pending(mount, below)
            moves = self.ns.state.store_moves
            ids = [i for i in ids if force or self._stuck.get(i) != moves.get(i)]
            if only is not None:
                ids = [i for i in ids if only(i, moves[i][0])]
        stuck = []
        for ino in ids:
            node = self.ns.tree.find(ino)
            if node is None:
                continue
            with self.holding(node):
                problem = self.complete(ino)
            if problem is not None:
                stuck.append(problem)
        return stuck

    def settle_quietly(
        self, mount: Mount | None = None, *, below: Iterable[Inode] = (), force: bool = False
    ) -> None:
        """``settle``, its failures logged: for a start, a listing, and a rename just
        journaled, which go on without."""
        try:
            stuck = self.settle(mount, below=below, force=force)
        except ShoalError as exc:
            log.warning("pending store moves stay pending: %s", exc)
            return
        for line in stuck:
            log.error("a store move cannot complete: %s; `shoal fsck` lists it", line)

    def complete(self, ino: int) -> str | None:
        """Completes ``ino``'s pending move (the caller holds it off the persister)."""
        ns = self.ns
        with ns.lock:
            move = ns.state.store_moves.get(ino)
            node = ns.tree.find(ino)
            if move is None or node is None:
                return None
            where = self.sync.mount_of(node)
            path = ns.tree.path_of(node)
            blocked = node.children is not None and len(self._pending(None, [node])) > 1
            subdirs = _subdirs(node) if node.children is not None else []
            ext = node.ext
            current = ext.fingerprint if ext is not None and node.flags & PERSISTED else None
            size = node.size
        problem: str | None = None
        if where is None:
            problem = "it is below no mount"
        elif blocked:
            problem = "files below it have moves that cannot complete"
        else:
            mount, new = where
            connector = self.mounts.connector(mount)
            old, recorded = move
            with ufs_errors():
                if subdirs:
                    finish_dir(connector, old, new, subdirs)
                else:
                    problem = move_file(connector, old, new, recorded, current, size)
        if problem is not None:
            self._stuck[ino] = move
            return f"{path} (inode {ino}) from {move[0]!r}: {problem}"
        with ns.lock:
            if ns.state.store_moves.get(ino) != move:
                return None  # deleted meanwhile
            seq = ns.gate.commit(E.StoreMoved(ino, time.time_ns()))
        ns.gate.durable(seq)
        self._stuck.pop(ino, None)
        return None

    # -- what other parts ask --------------------------------------------------------------------

    def ready(self, *nodes: Inode | None) -> None:
        """Before a rename of ``nodes``: their pending moves (and those below them) completed,
        or Unavailable naming the one that is not."""
        roots = [n for n in nodes if n is not None]
        if not self.has_pending(*roots):
            return
        stuck = self.settle(below=roots, force=True)
        if stuck:
            raise Unavailable(f"a store move is still pending: {stuck[0]}; `shoal fsck` lists it")

    def check_free(self, mount: Mount, rel: str, changing: int | None = None) -> None:
        """Before a change at store path ``rel`` of ``mount`` (of inode ``changing``, if it
        is one's, whose own move is not waited for: an upload of it holds it): the pending
        moves with content at, below or above ``rel`` are completed if they can be;
        Unavailable if one of them is not (the change would write over it or remove it)."""

        def there(ino: int, old: str) -> bool:
            return ino != changing and _overlap(old, rel)

        try:
            self.settle(mount, only=there)
        except ShoalError as exc:
            log.warning("pending store moves stay pending: %s", exc)
        with self.ns.lock:
            moves = self.ns.state.store_moves
            clash = [moves[i][0] for i in self._pending(mount) if there(i, moves[i][0])]
        if clash:
            raise Unavailable(
                f"{rel}: the store still holds a renamed file's content at {clash[0]!r}; its"
                " move completes once the store answers (`shoal fsck` lists it)"
            )


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")

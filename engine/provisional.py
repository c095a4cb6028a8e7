"""Provisional owners and modes: a file listed without its store's, until they are read.

An S3 listing returns no object metadata, and a HEAD per object costs a store as much as the
GET that reads the object (on moto, twice a cold epoch's requests): so a listing reads none
(ufs/s3.py), and a file it loads gets provisional attributes (engine/storeattrs.py: root's, mode
0600, no wider than what the store may grant, and refused by the kernel to everyone but root)
with the PROVISIONAL flag, set by its UfsFingerprint. They are completed by one SetAttr of the
store's owner, mode and mtime (a SetAttr of all three ends the flag), taken from:

- the first GET of the file's bytes (a read, a readahead, a prefetch): its reply carries the
  object's metadata, handed over by ``read_stream``'s ``on_status`` (``watcher``), so the
  common case costs no request of its own;
- a request where something needs them before any read (``settle``, a HEAD; ``settle_by``,
  a read whose GET brings them, engine/readpath.py's ``settle_attrs`` for a small file): a
  GETATTR (the kernel keeps provisional attributes for no time, so every open's permission
  check and every stat sends one; never at a lookup, which the kernel sends one at a time per
  directory), a permission check of the fsspec client's (engine/shortcircuit.py), and an
  upload that must carry them to the store (engine/persister.py, engine/writepath.py).

Only while the copy read is the file's own (the same fingerprint): a changed object is the next
listing's to follow. A listing cannot see an object's metadata change either (a copy onto itself
keeps its ETag): an explicit sync (``shoal fs sync``, ``reread``) reads every listed file's, a
HEAD each, in parallel, as every listing did before.

The GET's SetAttr is not waited for: the reader's first bytes do not wait for an fsync, and a
crash that loses it leaves the file provisional, completed again by the next read. Nor is a
GETATTR's (``durable=False``): its answer lives in the kernel, which a crash unmounts. An
upload's ``settle`` is, like any change its caller goes on to rely on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from engine.inode import PERSISTED, PROVISIONAL, S_IFMT, S_IFREG, Inode
from engine.mounts import MountTable, ufs_errors
from engine.namespace import Namespace
from engine.state import Mount
from engine.storeattrs import attr_change, completion
from engine.sync import MetadataSync
from ufs.base import OnStatus, UfsStatus
from ufs.base import join as ufs_join

REREAD_THREADS = 16  # HEADs in flight while an explicit sync reads a directory's attributes

# Files being settled by a read (``settle_by``), by id(node): their GETs' statuses, kept for the
# settling thread (whichever instance's watcher sees them: prefetch has its own), and how many
# threads wait for them.
_held: dict[int, tuple[int, list[UfsStatus]]] = {}
_held_lock = threading.Lock()


class ProvisionalAttrs:
    def __init__(self, ns: Namespace, mounts: MountTable, sync: MetadataSync) -> None:
        self.ns, self.mounts, self.sync = ns, mounts, sync

    def watcher(self, node: Inode) -> OnStatus | None:
        """What a read of ``node``'s store copy passes as ``on_status``: None (nothing to learn)
        unless its attributes are provisional."""
        if not node.flags & PROVISIONAL:
            return None
        return partial(self._seen, node)

    def _seen(self, node: Inode, status: UfsStatus) -> None:
        with _held_lock:
            held = _held.get(id(node))
            if held is not None:
                held[1].append(status)
                return
        self._complete(node, status)

    def settle_by(self, node: Inode, read: Callable[[], object]) -> None:
        """``settle`` with ``read`` (a read of the file, whose GET brings its attributes) in
        place of the HEAD, the SetAttr committed on this thread all the same: a kernel
        request's change must be its own (fuse/operations.py: made on a fetch thread, its
        invalidation races the GETATTR's reply, and the kernel decides on the provisional
        ones). Then a HEAD if no GET brought them (the block was cached, another copy)."""
        if not node.flags & PROVISIONAL:
            return
        key = id(node)
        with _held_lock:
            count, statuses = _held.get(key, (0, []))
            _held[key] = (count + 1, statuses)
        try:
            read()
        finally:
            with _held_lock:
                count, statuses = _held[key]
                if count == 1:
                    del _held[key]
                else:
                    _held[key] = (count - 1, statuses)
        for status in list(statuses):
            self._complete(node, status)
        self.settle(node, durable=False)

    def settle(self, node: Inode, durable: bool = True) -> None:
        """Reads ``node``'s store attributes (a HEAD) and completes its provisional ones with
        them, now (blocking: never on the event loop, never under the lock). ``durable=False``
        for an answer nothing outside the daemon keeps (a GETATTR's): a crash that loses the
        SetAttr leaves the file provisional, narrower, and the kernel's copy dies with it."""
        if not node.flags & PROVISIONAL:
            return
        where = self.sync.mount_of(node)
        if where is None:
            return
        mount, rel = where
        with ufs_errors():
            status = self.mounts.connector(mount).stat(rel)
        seq = self._complete(node, status)
        if seq and durable:
            self.ns.gate.durable(seq)

    def _complete(self, node: Inode, status: UfsStatus) -> int:
        """Commits the SetAttr that gives ``node`` the attributes ``status`` shows, if they are
        still provisional and ``status`` is of the file's own copy; its sequence number, or 0."""
        if status.is_dir or not status.attrs_known:
            return 0
        ns = self.ns
        with ns.lock:
            if not node.flags & PROVISIONAL or ns.tree.find(node.id) is not node:
                return 0
            ext = node.ext
            if ext is None or ext.fingerprint != status.fingerprint:
                return 0  # another copy than the one listed: the next listing follows it
            return ns.gate.commit(completion(node, status))

    def reread(self, directory: Inode, mount: Mount, rel: str) -> int:
        """After an explicit sync listed ``directory`` (``rel`` in ``mount``'s store): the
        store's owner and mode of each of its files whose content is the store's, read where
        the listing could not (a stat each, in parallel) and followed; how many changed."""
        connector = self.mounts.connector(mount)
        if connector.lists_attrs:
            return 0
        with self.ns.lock:
            files = [
                (child, ufs_join(rel, name))
                for name, child in (directory.children or {}).items()
                if child.mode & S_IFMT == S_IFREG and child.flags & PERSISTED and child.size
            ]
        if not files:
            return 0
        with ufs_errors(), ThreadPoolExecutor(REREAD_THREADS, "reread") as pool:
            statuses = list(pool.map(connector.stat, [path for _node, path in files]))
        ns, seq, count = self.ns, 0, 0
        with ns.lock:
            for (node, _path), status in zip(files, statuses, strict=True):
                ext = node.ext
                if ns.tree.find(node.id) is not node or not node.flags & PERSISTED:
                    continue
                if ext is None or ext.fingerprint != status.fingerprint:
                    continue  # another copy: the next listing follows it
                change = attr_change(node, status)
                if change is not None:
                    seq = ns.gate.commit(change)
                    count += 1
        if seq:
            ns.gate.durable(seq)
        return count

"""Owner, mode and modification time changes (chmod, chown, utimens) that reach the store.

Below a mount the store's copy is changed first and the entry journaled once it is, as
engine/ufsfirst.py does with names: a store that refuses (down, access denied) leaves the
namespace as it was, and a kill between the two leaves the store one step ahead, which the next
listing of the directory follows (engine/sync.py takes owners and modes from the store).

The store holds a copy of a directory and of a persisted file. A file whose content it does not
have yet (an upload pending, a file created and not yet committed) changes in the journal only,
and its upload or write carries the namespace's attributes there (engine/persister.py,
engine/writepath.py). Such a file is held for the change (``Persister.hold``): an upload under
way with the old attributes is called off and starts again after, with the new ones, so the
store never ends up with older ones than the journal.

A local file's fingerprint holds its mtime (size-mtime-inode), and an S3 object copied onto
itself may get a new ETag: the SetAttr carries the fingerprint the change left, so the next
listing does not take the same content for new content.
"""

from __future__ import annotations

import time

from engine.errors import NotFound
from engine.inode import S_IFMT, S_IFREG, Inode
from engine.mounts import ufs_errors
from engine.namespace import Namespace
from engine.placement import Placement
from engine.state import PERSISTED
from engine.ufsfirst import UfsFirstChanges
from journal import entries as E
from ufs.base import UfsAttrs


class StoreAttrs:
    def __init__(self, ns: Namespace, placement: Placement, changes: UfsFirstChanges) -> None:
        self.ns = ns
        self.placement = placement
        self.changes = changes

    def set(
        self,
        node: Inode,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mtime: int | None = None,
        atime: int | None = None,
    ) -> None:
        """Gives ``node`` these attributes (None: unchanged): in its store first, where the
        store holds a copy of it, then in the journal. An access time is the namespace's only
        (stores do not keep it: docs/mount.md)."""
        ns = self.ns
        attrs = UfsAttrs(mode, uid, gid, mtime)
        with ns.lock:
            self._check(node)
            where = self.placement.sync.mount_of(node)
        if where is None or attrs.empty():
            self._journal(node, attrs, None, None, atime)
            return
        mount, rel = where
        with self.changes.holding(node if node.children is None else None):
            with ns.lock:
                self._check(node)  # a hold may have waited: the file may be gone
                in_store = node.children is not None or bool(node.flags & PERSISTED)
                before = node.ext.fingerprint if node.ext is not None else None
            after = None
            if in_store:
                with ufs_errors():
                    after = self.placement.mounts.connector(mount).set_attrs(rel, attrs)
            self._journal(node, attrs, before, after.fingerprint if after else None, atime)

    def set_now(
        self,
        node: Inode,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mtime: int | None = None,
        atime: int | None = None,
    ) -> int | None:
        """``set`` where it needs neither the store nor a wait (the event loop calls it): a
        change of the journal only, its SetAttr committed and its sequence number returned
        for the caller to wait for. None, nothing done, where ``set`` must run instead: the
        store holds a copy (a directory, a persisted file), the file's upload is under way
        (``set`` calls it off and waits), or the lock is taken.

        Under the lock no upload can start (``Persister._start`` takes it), so a file with
        none under way needs no hold: the next upload reads the attributes committed here."""
        ns = self.ns
        if not ns.lock.acquire(blocking=False):
            return None
        try:
            self._check(node)
            attrs = UfsAttrs(mode, uid, gid, mtime)
            if not attrs.empty() and self.placement.sync.mount_of(node) is not None:
                if node.children is not None or node.flags & PERSISTED:
                    return None  # the store's copy first
                if self.changes.uploading(node):
                    return None
            entry = E.SetAttr(
                node.id, time.time_ns(), mode=mode, uid=uid, gid=gid, mtime=mtime,
                fingerprint=None, atime=atime,
            )  # fmt: skip
            return ns.gate.commit(entry)
        finally:
            ns.lock.release()

    def _check(self, node: Inode) -> None:
        """With the namespace lock held: the node is still there, on a writable mount."""
        if self.ns.tree.find(node.id) is not node:
            raise NotFound(f"inode {node.id} does not exist")
        self.ns.check_writable(node)

    def _journal(
        self,
        node: Inode,
        attrs: UfsAttrs,
        before: str | None,
        after: str | None,
        atime: int | None = None,
    ) -> None:
        """The SetAttr, with the fingerprint the store's copy has now if the change moved it
        and the file's content is still that copy (else the next listing decides)."""
        ns = self.ns
        with ns.lock:
            self._check(node)
            # Only a regular file has content a fingerprint stands for (SetAttr.fingerprint is
            # admitted on nothing else): a special file's or a symlink's store status moves
            # with its mtime too, and is not followed.
            moved = bool(after) and after != before and node.mode & S_IFMT == S_IFREG
            current = node.ext.fingerprint if node.ext is not None else None
            keep = moved and node.flags & PERSISTED and current == before
            entry = E.SetAttr(
                node.id, time.time_ns(), mode=attrs.mode, uid=attrs.uid, gid=attrs.gid,
                mtime=attrs.mtime_ns, fingerprint=after if keep else None, atime=atime,
            )  # fmt: skip
            seq = ns.gate.commit(entry)
        ns.gate.durable(seq)

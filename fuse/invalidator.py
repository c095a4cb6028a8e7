"""Telling the kernel about changes it did not make.

The kernel keeps names, attributes and file pages for long timeouts (training data is
read-mostly). Changes that come through the mount reach it with the replies that make them;
changes made otherwise (a metadata sync that found a new fingerprint, a command through the
admin channel, the TTL checker) are journal entries like any other, and this listener turns
them into invalidations: the entry or inode is dropped from the kernel's caches, so the next
access asks the daemon again.

Invalidations are sent from a thread of their own: they can block (the kernel may have to
wait for pages) and must never run on the event loop or under the namespace's lock.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

import pyfuse3

from journal import entries as E

log = logging.getLogger(__name__)

_STOP = object()
DRAIN_LIMIT_S = 5.0  # a drain racing close() (its mark behind the stop) waits no longer


class KernelInvalidator:
    def __init__(self) -> None:
        self._local = threading.local()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="invalidator", daemon=True)
        self.sent = 0
        # Files whose content changed since their last open: the kernel may still hold pages
        # of the old content (an invalidation is sent from a thread, later; a read answered
        # just before the change may land after it), so their next open drops them. Any
        # other file keeps its pages (keep_cache): they hold its current content. Emptied by
        # those opens; a read-only dataset never fills it.
        self._changed: set[int] = set()
        # Invalidations queued and done: ``pending`` compares them, on the event loop.
        self._queued = self._done = 0
        self._count_lock = threading.Lock()
        # The file the last observed entry created, if not at the kernel's request: its
        # fingerprint next (a directory load's, the same hold of the lock) is no change.
        self._born = 0

    def content_changed(self, ino: int) -> None:
        self._changed.add(ino)  # atomic: the observer (under the lock) and the loop both mark

    def keep_pages(self, ino: int) -> bool:
        """At an open of ``ino``: whether the kernel may keep its pages of the file."""
        if not self._changed:
            return True
        try:
            self._changed.remove(ino)
        except KeyError:
            return True
        return False

    def _put(self, item: tuple[Any, ...]) -> None:
        with self._count_lock:
            self._queued += 1
        self._queue.put(item)

    def pending(self) -> bool:
        """Whether invalidations queued so far are still to be sent."""
        return self._queued != self._done

    def drain(self) -> None:
        """Returns once every invalidation queued before the call is sent (blocking: from a
        worker thread). The kernel drops a GETATTR's reply when an invalidation of the inode
        arrives while it waits for it (attr_version), and decides on what it held: sent
        before a lookup's reply, the ones of a directory load cannot race what follows."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put(("mark", done))
        done.wait(DRAIN_LIMIT_S)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def from_kernel(self, value: bool) -> None:
        """Marks the calling thread as carrying out a kernel request (or not anymore)."""
        self._local.active = value

    def observe(self, entry: Any) -> None:
        """A namespace observer: called under the namespace's lock, so it only queues."""
        born = self._born
        if getattr(entry, "id", None) != born:  # the new file's own entries keep the rule
            self._born = 0
        if isinstance(entry, E.CreateFile):
            if not getattr(self._local, "active", False):
                self._born = entry.id
            return  # nothing to drop: the kernel has never been told of this inode
        if isinstance(entry, E.UfsFingerprint) and entry.id == born and not entry.new_content:
            # A file just made, with the store's copy: every maker commits the two in one hold
            # of the lock (engine/sync.py's load, engine/writepath.py), and the kernel learns
            # of an inode only from a reply sent after it, so it holds no pages nor attributes
            # of it to drop (new content written over a file is never taken for this). Marked
            # changed, its first open would keep no pages (harmless); but the invalidation,
            # sent later from the thread, would land after the kernel had looked the file up
            # and read it, and drop the pages of the pass after a cold one.
            self._born = 0
            return
        if isinstance(entry, E.UfsFingerprint | E.CompleteFile | E.ContentCommitted):
            # New content, whoever made it: the kernel's pages of the file must go (after a
            # write through the mount they hold the same bytes, and are dropped at a cost of
            # one re-read; a sync during a lookup finds changes the kernel never saw).
            self.content_changed(entry.id)
            self._put(("inode", entry.id, False))
        elif getattr(self._local, "active", False):
            return  # the kernel asked for this change: its reply told it
        elif isinstance(entry, E.Delete):
            self._put(("entry", entry.parent, entry.name, entry.id))
        elif isinstance(entry, E.Rename):
            self._put(("entry", entry.src_parent, entry.src_name, 0))
            self._put(("entry", entry.dst_parent, entry.dst_name, 0))
        elif isinstance(entry, E.SetAttr):
            if entry.size is not None:
                self.content_changed(entry.id)
            self._put(("inode", entry.id, entry.size is None))
        elif isinstance(entry, E.Link):  # a name the kernel may hold as missing; a link count
            self._put(("entry", entry.parent, entry.name, 0))
            self._put(("inode", entry.id, True))

    def attributes_now(self, ino: int) -> None:
        """Drops the kernel's attributes of ``ino`` at once, from the calling thread (the event
        loop may call it): without the pages, the kernel waits for nothing to do it. For a
        change the kernel must see by the next stat, not after a thread's turn."""
        self._inode_now(ino, attr_only=True)

    def pages_now(self, ino: int) -> None:
        """Drops the kernel's pages (and attributes) of ``ino`` at once, from the calling
        thread, which must not be the event loop: the kernel may wait for a page that a READ
        the loop has still to answer holds locked."""
        self._inode_now(ino, attr_only=False)

    def _inode_now(self, ino: int, attr_only: bool) -> None:
        try:
            pyfuse3.invalidate_inode(ino, attr_only)
            self.sent += 1
        except OSError:
            pass  # not cached: nothing to drop

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if item[0] == "mark":
                item[1].set()
                continue
            try:
                if item[0] == "entry":
                    _kind, parent, name, deleted = item
                    pyfuse3.invalidate_entry(parent, os.fsencode(name), deleted)
                else:
                    _kind, ino, attr_only = item
                    pyfuse3.invalidate_inode(ino, attr_only)
                self.sent += 1
            except OSError:
                pass  # the kernel did not have it cached: nothing to drop
            except Exception:
                log.exception("invalidating %s failed", item)
            with self._count_lock:
                self._done += 1

"""Where the frontend spools a new file written through its store (THROUGH, CACHE_THROUGH):
in the store itself, when it can hold a temporary file of ours (ufs/staged.py).

The writer's bytes then go to their final disk once, as they are written, and close or fsync
only lands them (fsync and rename) instead of copying the whole spool into the store first.
Everything else spools in the home, as before: a store that stages nothing, a file written
to the cache first, a path the store cannot stage.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import ShoalError
from engine.inode import Inode
from engine.mounts import ufs_errors
from engine.placement import Placement
from engine.state import Mount
from ufs.base import UnderFS
from ufs.staged import StagedWrite

log = logging.getLogger(__name__)


@dataclass(eq=False)
class StoreSpool:
    """A staged write in ``mount``'s store, as the frontend's write buffer holds it."""

    staged: StagedWrite
    mount: Mount

    @property
    def fd(self) -> int:
        return self.staged.fd

    @property
    def landed(self) -> bool:
        return self.staged.landed

    def discard(self) -> None:
        """The temporary file removed: its content will not land (the file was unlinked
        while open, or its commit failed and the last handle closed)."""
        try:
            self.staged.discard()
        except OSError:  # a sweep removes it once this process is gone; fsck lists it
            pass

    def close(self) -> None:
        """The writer is done with the descriptor: closed now, or once the store's own
        threads no longer read it (an upload's parts)."""
        self.staged.close()

    def drop(self) -> None:
        """``discard``, then ``close``: a spool whose content will never land, let go."""
        self.discard()
        self.close()

    def abandon(self) -> None:
        """As ``discard``, waiting for what the store must undo (an upload begun: aborted)."""
        try:
            self.staged.abandon()
        except Exception:  # fsck lists what is left (a store that failed to answer)
            pass

    def wrote(self, offset: int, end: int) -> None:
        """The writer wrote [offset, end): a store that uploads as parts fill sends them."""
        self.staged.wrote(offset, end)

    def truncated(self, size: int) -> None:
        self.staged.truncated(size)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.staged.fd, length, offset)


def may_spool_in_store(placement: Placement, node: Inode) -> bool:
    """``store_spool``'s answer for the new file ``node`` without the store: False if it would
    make no spool (not below a mount, or a write type that writes the store later); True if it
    might (the store may still stage nothing). Reads only the namespace: no directory loaded,
    for the event loop."""
    where = placement.sync.mount_of(node)
    return where is not None and placement.write_type_of(node, where[0], None).writes_ufs_at_close


def store_spool(placement: Placement, path: str, spool_dir: str | None = None) -> StoreSpool | None:
    """A spool in the store for the new file at ``path``, if its write type writes the store
    at close and the store stages writes; None otherwise (or if the store refuses now: the
    write at close reports that). ``spool_dir``: the frontend's spool directory, where a
    store that uploads parts as they fill (S3) keeps the spool it sends them from."""
    try:
        parent, name, ufs = placement.target(path)
        if ufs is None:
            return None
        mount, connector, rel = ufs
        node = parent.children.get(name)  # type: ignore[union-attr]
        if not placement.write_type_of(node or parent, mount, None).writes_ufs_at_close:
            return None
        return staged_spool(connector, mount, rel, spool_dir)
    except ShoalError:
        return None


def staged_spool(
    connector: UnderFS, mount: Mount, rel: str, spool_dir: str | None = None
) -> StoreSpool | None:
    """The store's staged write for ``rel`` as a spool; None if the store stages none. A
    store's refusal raises the engine's error for it."""
    with ufs_errors():
        staged = connector.stage(rel, spool_dir)
    return StoreSpool(staged, mount) if staged is not None else None


BURST = 16
BURST_GAP_S = 0.25


class SpareSpools:
    """One spool made ahead per store whose spools are plain temporary files at its root
    (``StagedWrite.targetless``, as the local connector stages: it names no target, ``land``
    gives it one), so that in a burst of creates the next new file written THROUGH or
    CACHE_THROUGH takes it on the event loop: no worker thread's hop and no file creation in
    the store on the creating caller's path (a single-threaded `tar x` pays both once per
    file). Made in a thread of its own after a create took one; a store that stages anything
    else (S3's upload begun for its key) never gets one. A spare left by a killed process is a
    dead writer's temporary file, swept at the next start as any other (ufs/tempfiles.py)."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        # A spare is an empty file at the store's root that whoever lists the store sees while
        # the mount runs: kept only in a burst of creates (`tar x`, `cp -r`, `git clone`),
        # BURST of them each within BURST_GAP_S of the last, not for an odd new file.
        self._streak: dict[int, tuple[int, float]] = {}  # mount id: creates, the last's time
        self._lock = threading.Lock()
        self._ready: dict[int, StoreSpool] = {}  # by mount id
        self._asked: set[int] = set()  # mount ids whose spare is being made
        # (mount, path): a spare to make; a spool: one to drop; None: the end
        self._jobs: queue.SimpleQueue[tuple[Mount, str] | StoreSpool | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def take(self, mount: Mount) -> StoreSpool | None:
        """The spare of ``mount``'s store, if one is ready (no I/O: for the event loop)."""
        with self._lock:
            spool = self._ready.pop(mount.id, None)
        if spool is not None and spool.mount != mount:  # remounted meanwhile: not its store
            self._submit(spool)  # an unlink in the store: never on the loop
            return None
        return spool

    def refill(self, spool: StoreSpool, where: Callable[[], tuple[Mount, str] | None]) -> None:
        """After a create got ``spool``: a spare made for the next one, in the background, if
        the store's spools name no target (``where``: the file's mount and path in it, asked
        for only then)."""
        if not spool.staged.targetless:
            return
        mount = spool.mount
        now = time.monotonic()
        with self._lock:
            count, last = self._streak.get(mount.id, (0, now))
            count = count + 1 if now - last <= BURST_GAP_S else 1
            self._streak[mount.id] = (count, now)
            if count < BURST or self._closed or mount.id in self._ready or mount.id in self._asked:
                return
            self._asked.add(mount.id)
        found = where()
        if found is None or found[0] != mount:  # moved out of its mount meanwhile: none made
            with self._lock:
                self._asked.discard(mount.id)
            return
        self._submit((mount, found[1]))

    def _submit(self, job: tuple[Mount, str] | StoreSpool) -> None:
        with self._lock:
            if not self._closed:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="spare-spools", daemon=True
                    )
                    self._thread.start()
                self._jobs.put(job)
                return
        if isinstance(job, StoreSpool):  # stopped: nobody else will
            job.drop()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if isinstance(job, StoreSpool):
                job.drop()
                continue
            mount, rel = job
            spool = None
            try:
                spool = staged_spool(self.placement.mounts.connector(mount), mount, rel)
            except Exception as exc:  # the next create makes its own, and reports a failure
                log.debug("no spare spool for mount %d: %s", mount.id, exc)
            with self._lock:
                self._asked.discard(mount.id)
                if spool is not None and not self._closed:
                    self._ready[mount.id], spool = spool, None
            if spool is not None:  # closed meanwhile
                spool.drop()

    def close(self) -> None:
        """At the stop: the spares' temporary files removed, the thread ended."""
        with self._lock:
            self._closed = True
            spares, self._ready = list(self._ready.values()), {}
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)  # after any drop asked for: done first
            thread.join()
        for spool in spares:
            spool.drop()

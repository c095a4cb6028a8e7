"""The background persister: uploads files written ASYNC_THROUGH from the cache to their UFS.

A file written ASYNC_THROUGH is acknowledged once its blocks are cached and PersistRequested
(file, version) is journaled. This worker then streams the blocks to the UFS and journals
Persisted (file, version, fingerprint): from then on the blocks may be evicted like any other.
Pending requests are part of the state, so after a crash (even kill -9) they are resumed at the
next start. A request for a version that is no longer the file's current one is dropped: the
newer content has its own request.

An upload writes to the file's path as it was when the upload began, so a change to that path
or content must not race it. A delete, rename or rewrite of a file therefore ``hold``s it
first: that calls off the file's upload under way (its stream stops at the next block: a
connector's write is atomic, so nothing of it lands), waits until it has ended — outside the
commit gate's lock — and keeps new uploads of the file from starting until the change is
journaled; the upload is then tried again if the file still needs one. An upload that had
already landed when it was called off has journaled its Persisted, so the change sees a
persisted file and carries it to the UFS (deletes or renames the object). Once a delete is
acknowledged no upload of the deleted file can still land: a deleted file never comes back to
the UFS, after a clean shutdown or a kill -9. One file has at most one upload at a time, so an
older version can never land after a newer one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from engine import metrics
from engine.cache.blockcache import BlockCache
from engine.links import mirror_names
from engine.mounts import MountTable, ufs_errors
from engine.namespace import Namespace
from engine.provisional import ProvisionalAttrs
from engine.state import Mount, block_size_of
from engine.sync import MetadataSync
from engine.xattrs import carry_to_store, xattrs_of
from journal import entries as E
from ufs.base import UfsAttrs, UnderFS
from ufs.errors import UfsError

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """A change to the file called its upload off (raised into the connector's write)."""


class _Upload:
    """One upload under way: its file, its version, and whether a change called it off."""

    __slots__ = ("file", "version", "cancelled", "done")

    def __init__(self, file: int) -> None:
        self.file = file
        self.version = -1  # known once the upload has read the state
        self.cancelled = False
        self.done = threading.Event()


class _BlockStream:
    """The file's cached blocks as a readable stream (what a connector's ``write`` takes); it
    fails at the next block once its upload is called off."""

    def __init__(self, blocks: Iterator[bytes], upload: _Upload) -> None:
        self.blocks = blocks
        self.upload = upload
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            if self.upload.cancelled:
                raise Cancelled(f"the upload of inode {self.upload.file} was called off")
            block = next(self.blocks, None)
            if block is None:
                break
            self.buffer += block
        if size < 0:
            size = len(self.buffer)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


class Persister:
    def __init__(
        self, ns: Namespace, mounts: MountTable, sync: MetadataSync, cache: BlockCache
    ) -> None:
        self.ns = ns
        self.mounts = mounts
        self.sync = sync
        self.cache = cache
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="persister")
        self._pending: list[Future[None]] = []
        # Taken after the namespace's lock when both are needed, never before it.
        self._lock = threading.Lock()
        self._running: dict[int, _Upload] = {}  # file -> its upload under way
        self._held: dict[int, int] = {}  # subtree root -> how many changes hold it
        self._waiting: set[int] = set()  # files whose upload waits for a hold or an upload
        # Files whose upload waits for their last writer's close (``_until_closed``); changed
        # without the lock, by single set operations (atomic under the GIL): the close comes
        # from the event loop, which must not wait for a lock.
        self._after_close: set[int] = set()
        self._closed = False
        # Before an upload writes its path: no pending store move (engine/storemove.py) still
        # has another file's content there (set by the file system; raises to wait).
        self.check_free: Callable[[Mount, str, int], None] | None = None

    def resume(self) -> int:
        """Queues every persist the journal says is pending (after a restart)."""
        with self.ns.lock:
            pending = dict(self.ns.state.persists)
        for file, version in pending.items():
            self.submit(file, version)
        return len(pending)

    def submit(self, file: int, version: int | None = None) -> None:
        """Queues the upload of ``file``'s pending version. ``version``: the one just
        requested; an upload of an older one under way is called off (it would only be
        overwritten), and this one follows it."""
        with self._lock:
            if self._closed:
                return  # pending in the journal: resumed at the next start
            running = self._running.get(file)
            if running is not None and version is not None and 0 <= running.version < version:
                running.cancelled = True
            try:
                future = self._pool.submit(self._persist, file)
            except RuntimeError:  # shut down meanwhile
                return
            self._pending.append(future)

    def drain(self) -> None:
        """Waits for every queued persist (failures are logged and stay pending)."""
        while True:
            with self._lock:
                futures, self._pending = self._pending, []
            if not futures:
                return
            for future in futures:
                future.exception()

    @contextmanager
    def hold(self, roots: Iterable[int]) -> Iterator[None]:
        """For a change to the files below ``roots`` (inode ids: files or directories): calls
        off their uploads under way and waits for them to end, and keeps new ones from
        starting until the block ends; then the files still pending are queued again. The
        caller must not hold the namespace's lock (an ending upload journals under it)."""
        ids = list(dict.fromkeys(roots))
        with self.ns.lock, self._lock:
            for root in ids:
                self._held[root] = self._held.get(root, 0) + 1
            victims = [u for u in self._running.values() if self._below(u.file, ids)]
            for upload in victims:
                upload.cancelled = True
        try:
            for upload in victims:
                upload.done.wait()
            yield
        finally:
            with self._lock:
                for root in ids:
                    left = self._held.pop(root) - 1
                    if left:
                        self._held[root] = left
                again, self._waiting = self._waiting, set()
            for file in again:
                self.submit(file)

    def uploading(self, file: int) -> bool:
        """Whether ``file``'s upload is under way (one dict lookup: no lock, for callers
        holding the namespace's, under which none starts)."""
        return file in self._running

    def _below(self, file: int, roots: Iterable[int]) -> bool:
        """With the namespace's lock held: whether ``file`` is one of ``roots`` or below one."""
        node = self.ns.tree.find(file)
        if node is None:
            return False
        return any(self.ns.tree.is_ancestor(root, node) for root in roots)

    def _start(self, file: int) -> _Upload | None:
        """The file's upload, registered as running; None if it must wait (a change holds the
        file, or its previous upload has not ended): it is queued again when that ends."""
        with self.ns.lock, self._lock:
            if file in self._running or (self._held and self._below(file, self._held)):
                self._waiting.add(file)
                return None
            if self._until_closed(file):
                return None
            upload = self._running[file] = _Upload(file)
            return upload

    def _until_closed(self, file: int) -> bool:
        """Whether ``file``'s upload waits for its last writer's close, which queues it
        (``closed_for_writing``). A file still open for writing is uploaded once, after its
        writer is done: tar, cp -p and rsync change owner, mode and times after the content
        is committed (a utimens commits it) and before the close, and each change would
        otherwise call off an upload under way and wait for it to end (``hold``).

        Marked first, the writers read after; the close counts its writer out first, then
        takes the mark: one of the two sees the other, and whoever takes the mark uploads."""
        self._after_close.add(file)
        if self.ns.open_files.writing(file):
            return True
        try:
            self._after_close.remove(file)
        except KeyError:
            return True  # the close took it meanwhile and queued the upload
        return False

    def closed_for_writing(self, file: int) -> None:
        """``file``'s last handle open for writing closed: its upload, if one waited."""
        try:
            self._after_close.remove(file)
        except KeyError:
            return
        self.submit(file)

    def _finish(self, upload: _Upload) -> None:
        with self._lock:
            del self._running[upload.file]
            again = upload.file in self._waiting or upload.cancelled
            self._waiting.discard(upload.file)
        upload.done.set()
        if again:  # a hold still in place makes it wait again; its end queues it
            self.submit(upload.file)

    def _persist(self, file: int) -> None:
        upload = self._start(file)
        if upload is None:
            return
        try:
            self._upload(upload)
        except Exception as exc:  # stays pending in the journal: retried at the next start
            if upload.cancelled:
                log.info("the upload of inode %d was called off by a change to it", file)
            else:
                log.error("persisting inode %d version %d failed: %s", file, upload.version, exc)
        finally:
            self._finish(upload)

    def _upload(self, upload: _Upload) -> None:
        file = upload.file
        listed = self.ns.tree.find(file)
        if listed is not None:  # the upload carries its store's owner and mode, never provisional
            ProvisionalAttrs(self.ns, self.mounts, self.sync).settle(listed)
        with self.ns.lock:
            version = self.ns.state.persists.get(file)
            if version is None:
                return  # persisted already, or the file is gone (its request with it)
            upload.version = version
            node = self.ns.tree.find(file)
            superseded = 0
            if node is not None and node.version == version:
                where = self.sync.mount_of(node)
                size, bs = node.size, block_size_of(node)
                # A change of these holds the file (engine/ufsattrs.py): this upload is called
                # off and the next one carries the new ones.
                attrs = UfsAttrs(node.mode & 0o7777, node.uid, node.gid, node.mtime)
            else:  # nothing of this version is to be uploaded
                superseded = self.ns.gate.commit(E.Persisted(file, version, "", time.time_ns()))
        if superseded:
            self.ns.gate.durable(superseded)
            return
        if where is None:
            raise RuntimeError(f"inode {file} is not below a mount")
        mount, rel = where
        count = -(-size // bs) if bs else 0

        def blocks() -> Iterator[bytes]:
            for idx in range(count):
                data = self.cache.read((file, version, idx))
                if data is None:
                    raise RuntimeError(f"block {idx} of inode {file} is missing from the cache")
                yield data

        connector = self.mounts.connector(mount)
        if self.check_free is not None and self.ns.state.store_moves:
            self.check_free(mount, rel, file)  # refused: stays pending, tried again later
        with ufs_errors():
            stream = _BlockStream(blocks(), upload)
            status = connector.write(rel, stream, attrs)  # type: ignore[arg-type]
        metrics.UFS_WRITTEN.add(status.size)
        node = self.ns.tree.find(file)
        status = carry_to_store(connector, rel, xattrs_of(node) if node else {}, status)
        with self.ns.lock:
            node = self.ns.tree.find(file)
            moved = node is None or self.sync.mount_of(node) != (mount, rel)
            if not moved:
                seq = self.ns.gate.commit(
                    E.Persisted(file, version, status.fingerprint, time.time_ns())
                )
        if moved:
            # Deleted or moved by a change that did not hold the file: the object written is
            # nobody's. Removed unless it was replaced meanwhile.
            log.warning("inode %d was deleted or moved while it was uploaded", file)
            _remove_if_ours(connector, rel, status.fingerprint)
            return
        self.ns.gate.durable(seq)
        if node is not None and node.nlink > 1:
            mirror_names(self.ns, self.sync, connector, node, mount, rel)

    def close(self) -> None:
        """Finishes the uploads under way; queued ones stay pending in the journal and are
        resumed at the next start."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def _remove_if_ours(connector: UnderFS, rel: str, fingerprint: str) -> None:
    try:
        if connector.stat(rel).fingerprint == fingerprint:
            connector.delete(rel)
    except UfsError as exc:
        log.warning("cannot remove %s, uploaded for a file that went: %s", rel, exc)

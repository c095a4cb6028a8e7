"""The background persister: uploads files written ASYNC_THROUGH from the cache to their UFS.

A file written ASYNC_THROUGH is acknowledged once its blocks are cached and PersistRequested
(file, version) is journaled. This worker then streams the blocks to the UFS and journals
Persisted (file, version, fingerprint): from then on the blocks may be evicted like any other.
Pending requests are part of the state, so after a crash (even kill -9) they are resumed at the
next start. A request for a version that is no longer the file's current one is dropped: the
newer content has its own request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from engine.cache.blockcache import BlockCache
from engine.mounts import MountTable, ufs_errors
from engine.namespace import Namespace
from engine.state import block_size_of
from engine.sync import MetadataSync
from journal import entries as E

log = logging.getLogger(__name__)


class _BlockStream:
    """The file's cached blocks as a readable stream (what a connector's ``write`` takes)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
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
        self._pending: dict[int, Future[None]] = {}
        self._lock = threading.Lock()

    def resume(self) -> int:
        """Queues every persist the journal says is pending (after a restart)."""
        with self.ns.lock:
            pending = dict(self.ns.state.persists)
        for file, version in pending.items():
            self.submit(file, version)
        return len(pending)

    def submit(self, file: int, version: int) -> None:
        with self._lock:
            self._pending[file] = self._pool.submit(self._persist, file, version)

    def drain(self) -> None:
        """Waits for every queued persist (failures are logged and stay pending)."""
        while True:
            with self._lock:
                futures = list(self._pending.values())
                self._pending = {}
            if not futures:
                return
            for future in futures:
                future.exception()

    def _persist(self, file: int, version: int) -> None:
        try:
            self._upload(file, version)
        except Exception as exc:  # stays pending in the journal: retried at the next start
            log.error("persisting inode %d version %d failed: %s", file, version, exc)

    def _upload(self, file: int, version: int) -> None:
        with self.ns.lock:
            node = self.ns.tree.find(file)
            if node is None or node.version != version:
                if self.ns.state.persists.get(file) == version:
                    # Superseded or deleted: nothing of this version is to be uploaded.
                    seq = self.ns.gate.commit(E.Persisted(file, version, "", time.time_ns()))
                    self.ns.gate.durable(seq)
                return
            where = self.sync.mount_of(node)
            size, bs = node.size, block_size_of(node)
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
        with ufs_errors():
            status = connector.write(rel, _BlockStream(blocks()))  # type: ignore[arg-type]
        with self.ns.lock:
            if self.ns.tree.find(file) is None:
                # Deleted while it was uploading: there is no file to mark persisted, and the
                # gate would refuse the entry. (The object written may outlive the deletion in
                # the UFS: a known defect of the persister, filed with the crash-safety work.)
                log.info("inode %d was deleted while it was persisted", file)
                return
            seq = self.ns.gate.commit(
                E.Persisted(file, version, status.fingerprint, time.time_ns())
            )
        self.ns.gate.durable(seq)

    def close(self) -> None:
        """Finishes the uploads under way; queued ones stay pending in the journal and are
        resumed at the next start."""
        self._pool.shutdown(wait=True, cancel_futures=True)

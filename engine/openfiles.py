"""Files unlinked while open (orphans): served by id until their last close, then released.

An orphan is state (``State.orphans``, journaled by Delete/Rename ``orphan`` and
OrphanReleased, carried by checkpoints): it has no name, no store copy (removed at unlink, as
its name went) and no pending upload (called off at unlink); its attributes and its cached
blocks live on for the handles still open. Its last close journals OrphanReleased, which drops
its blocks from the map, and their tier files are deleted after. No handle survives a
restart, so start-up releases every orphan a crash left.
"""

from __future__ import annotations

import logging
import time

from engine.cache.blockcache import BlockCache
from engine.errors import DataLost, ShoalError, StaleHandle
from engine.inode import Inode
from engine.names import split_path
from engine.namespace import Namespace
from engine.readpath import ReadPath
from engine.state import block_size_of
from journal import entries as E

log = logging.getLogger(__name__)


def node_of(ns: Namespace, ino: int) -> Inode:
    """The inode an open handle uses: named, or an orphan. Gone (its last handle closed, or
    a handle that predates a replacement): ESTALE rather than someone else's bytes."""
    node = ns.tree.find(ino) or ns.state.orphans.get(ino)
    if node is None:
        raise StaleHandle(f"inode {ino} was removed while open")
    return node


def is_orphan(ns: Namespace, ino: int) -> bool:
    return ino in ns.state.orphans


def opened(ns: Namespace, ino: int, writing: bool = False) -> None:
    ns.open_files.opened(ino, writing)


def released(ns: Namespace, cache: BlockCache | None, ino: int) -> None:
    """One handle of ``ino`` closed; an orphan goes with its last."""
    if closed(ns, ino):
        release(ns, cache, [ino])


def closed(ns: Namespace, ino: int, writing: bool = False) -> bool:
    """One handle of ``ino`` closed, counted without a lock or a wait (every close of every
    file comes here); True if it was an orphan's last, which ``release`` must then let go."""
    return ns.open_files.released(ino, writing) and ino in ns.state.orphans


def release(ns: Namespace, cache: BlockCache | None, inos: list[int]) -> None:
    """Journals OrphanReleased for those of ``inos`` still orphans and no longer open, then
    deletes their blocks' tier files (a crash before that: start-up's reconcile does)."""
    seq = 0
    with ns.lock, ns.gate.batched():  # one hand-off to the writer, as mkdir -p's
        for ino in inos:
            if ino in ns.state.orphans and not ns.open_files.is_open(ino):
                seq = ns.gate.commit(E.OrphanReleased(ino, time.time_ns()))
    if not seq:
        return
    ns.gate.durable(seq)
    if cache is not None:
        cache.collect_garbage()


def release_at_start(ns: Namespace, cache: BlockCache | None) -> int:
    """Releases every orphan: no handle outlives the process that opened it."""
    with ns.lock:
        inos = sorted(ns.state.orphans)
    if inos:
        log.info("releasing %d file(s) unlinked while open before the last stop", len(inos))
        release(ns, cache, inos)
    return len(inos)


def set_attrs(ns: Namespace, ino: int, **changes: int | None) -> Inode:
    """fchmod, fchown, futimens of an orphan: journaled only, it has no store copy to change
    (the kernel has checked that the caller may)."""
    mode = changes.get("mode")
    entry = E.SetAttr(
        ino, time.time_ns(), None if mode is None else mode & 0o7777,
        changes.get("uid"), changes.get("gid"), changes.get("mtime"),
    )  # fmt: skip
    with ns.lock:
        node = node_of(ns, ino)
        seq = ns.gate.commit(entry)
    ns.gate.durable(seq)
    return node


def keep_content(ns: Namespace, reads: ReadPath, path: str) -> None:
    """Before the file at ``path`` loses its name, and with it its store copy: if that leaves
    it an orphan (it is open), its content is fetched into the cache now, the only place it
    can live on (a file never read, written THROUGH, is only in its store)."""
    with ns.lock:
        try:
            node = ns.tree.resolve(split_path(path))
        except ShoalError:
            return
        if not ns.open_files.orphans(node) or reads.cache is None:
            return
        bs = block_size_of(node) or reads.sync.block_size
        have = ns.state.blocks.get(node.id, {})
        if all((node.version, i) in have for i in range(-(-node.size // bs))):
            return
    try:
        reads.read_node(node, 0, node.size)
        reads.cache.drain()  # its blocks stored and journaled before the name goes
        reads.store_missing(node)  # those the storer's full queue turned away
    except ShoalError as exc:
        log.warning("%s: unlinked while open, its content could not be cached: %s", path, exc)


def read(cache: BlockCache | None, node: Inode, bs: int, offset: int, length: int) -> bytes:
    """An orphan's bytes (blocks of ``bs``), from its cached blocks only: it has no name, no
    store copy, and perhaps no parent left to find a mount by."""
    end = min(offset + length, node.size)
    if offset >= end:
        return b""
    parts = []
    for idx in range(offset // bs, (end - 1) // bs + 1):
        start = idx * bs
        lo, hi = max(0, offset - start), min(bs, end - start)
        data = cache.read((node.id, node.version, idx), lo, hi - lo) if cache else None
        if data is None:
            raise DataLost(f"inode {node.id}, unlinked while open: block {idx} is not cached")
        parts.append(data)
    return b"".join(parts)

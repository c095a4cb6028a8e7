"""Reads for a client outside the kernel: the fsspec client (cli/client/), served by the
daemon's client socket (fuse/clientserver.py).

Such a client has no kernel checking modes for it, so every path is walked here on behalf of
its ``Caller`` with the kernel's rules (engine/posix.py ``may_access``): search permission on
each directory on the way, read permission on a file opened, read and search on a directory
listed. Lazy loading and sync from the UFS happen on the way, as a lookup through the mount
would make them happen.

A file opened for reading hands out its cached blocks as open descriptors of their tier files
(short-circuit reads, as HDFS and Alluxio do): the client preads them itself, and the tier
files stay 0600 in their 0700 directories. A block is verified (length, CRC-32) before its
descriptor leaves, as a hit through the mount would be, so the client checks nothing more. A
block's bytes never change under its key (file, version, index): a new content is a new
version, so a descriptor stays right for as long as the client holds it, even after the block
was evicted (its space then comes back when the client closes it). Blocks not cached are read
here (``read``), which fetches and caches them as a read through the mount does.
"""

from __future__ import annotations

import os

from engine import posix
from engine.errors import InvalidArgument, NotADirectory, PermissionDenied, StaleHandle
from engine.filesystem import FileSystem
from engine.inode import ROOT_ID, S_IFMT, S_IFREG, Inode
from engine.names import split_path
from engine.posix import R_OK, X_OK, Caller
from engine.state import BlockInfo

BATCH = 64  # block descriptors per answer at most (one SCM_RIGHTS message carries 253)


def resolve(fs: FileSystem, caller: Caller, path: str) -> Inode:
    """The inode at namespace ``path``, each directory on the way searched as ``caller``."""
    node = fs.inode(ROOT_ID)
    for name in split_path(path):
        if node.children is None:
            raise NotADirectory(f"{fs.ns.path_of(node)} is not a directory")
        posix.check_access(node, caller, X_OK)
        found = fs.lookup_in(node.id, name)  # listed from the UFS first if due
        assert found is not None  # with wait, a lookup answers or raises
        node = found
    return node


def listing(fs: FileSystem, caller: Caller, path: str) -> list[tuple[str, Inode]]:
    """A directory's entries, sorted by name; the directory read and searched as ``caller``."""
    node = resolve(fs, caller, path)
    if node.children is None:
        raise NotADirectory(f"{path} is not a directory")
    posix.check_access(node, caller, R_OK | X_OK)
    got = fs.child_entries(node.id)
    assert got is not None
    names, _ids = got
    entries = []
    for name in sorted(names):
        child = fs.child_of(node.id, name)
        if child is not None:  # removed meanwhile
            entries.append((name, child))
    return entries


def open_file(fs: FileSystem, caller: Caller, path: str) -> Inode:
    """A regular file opened for reading as ``caller``: EISDIR, EINVAL for anything else that
    is not a regular file, EACCES without read permission."""
    node = resolve(fs, caller, path)
    posix.check_open(fs.ns, node, writing=False)
    if node.mode & S_IFMT != S_IFREG:
        raise InvalidArgument(f"{path} is not a regular file")
    try:
        posix.check_access(node, caller, R_OK)
    except PermissionDenied:
        if not fs.attrs_pending(node):
            raise
        # Provisional attributes refuse all but root (engine/provisional.py): the store's
        # decide, read first, as the kernel asks a GETATTR before it refuses.
        fs.settle_attrs(node)
        posix.check_access(node, caller, R_OK)
    return node


def content_of(fs: FileSystem, node: Inode) -> tuple[int, int]:
    """(version, size) of ``node``'s content, taken together: a change between the two reads
    would pair one content's size with another's blocks."""
    with fs.ns.lock:
        return node.version, node.size


def current(fs: FileSystem, ino: int, version: int) -> Inode:
    """The file a client opened, if its content is still ``version``; ESTALE if it changed or
    went (the client opens it again by path)."""
    node = fs.find_inode(ino)
    if node is None or node.version != version:
        raise StaleHandle(f"inode {ino} changed since it was opened")
    return node


def block_fds(fs: FileSystem, node: Inode, version: int, first: int) -> list[tuple[int, int]]:
    """(index, open descriptor) of the cached blocks of ``node``'s content ``version`` among
    the ``BATCH`` from ``first`` on; the caller closes the descriptors. Blocks not cached are
    not listed: the client reads those through ``read``."""
    cache = fs.cache
    if cache is None or node.version != version:
        return []
    bs = fs.block_size_for(node)
    last = min(first + BATCH, (node.size + bs - 1) // bs)
    found = []
    for idx in range(first, last):
        fd = _block_fd(fs, (node.id, version, idx))
        if fd is not None:
            found.append((idx, fd))
    return found


def block_file(fs: FileSystem, key: tuple[int, int, int]) -> tuple[str, BlockInfo] | None:
    """The tier file of cached block ``key`` and its (tier, length, CRC-32), once checked; None
    if it is not cached. A cluster worker hands these out by name (engine/cluster/locate.py)."""
    cache = fs.cache
    assert cache is not None
    # A read of no bytes checks the block (length, CRC-32) unless checked since it last
    # changed on disk, and drops it if damaged: then it is a miss.
    if cache.read(key, 0, 0) is None:
        return None
    info = cache.info(key)
    tier = cache.by_name.get(info.tier) if info is not None else None
    if tier is None or info is None:
        return None
    return tier.path_of(key), info


def _block_fd(fs: FileSystem, key: tuple[int, int, int]) -> int | None:
    found = block_file(fs, key)
    if found is None:
        return None
    try:
        return os.open(found[0], os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # evicted meanwhile: a miss
        return None


def read(fs: FileSystem, ino: int, version: int, offset: int, length: int) -> bytes:
    """Bytes of an opened file the client has no block for: from the cache or the UFS, cached
    on the way as a read through the mount is."""
    node = current(fs, ino, version)
    return fs.read_node(node, offset, length)

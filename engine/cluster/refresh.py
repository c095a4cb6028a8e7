"""What a node does with the cluster's news of its store (engine/cluster/events.py), and how a
worker makes sure it serves the version a client expects.

An event's paths are brought in step with the store now, through the metadata sync every node
has: a file the node knows is stat'ed again (changed or gone), any other path's directory
listed again if this node has listed it (one it never listed holds nothing stale). The sync's
entries do the rest as they do for any change found in the store: a new fingerprint drops the
old version's cached blocks, a deleted or renamed name goes, and a FUSE client's invalidator
drops the kernel's entries, attributes and pages.
"""

from __future__ import annotations

import logging
import posixpath

from engine.errors import NotFound, ShoalError, StaleHandle
from engine.filesystem import FileSystem
from engine.inode import Inode

log = logging.getLogger(__name__)


def _namespace_path(root: str, rel: str) -> str:
    return posixpath.join(root, rel.strip("/")).rstrip("/") or "/"


class PathRefresher:
    """``on_paths`` for a node whose store is mounted at ``root`` of its namespace."""

    def __init__(self, fs: FileSystem, root: str = "/") -> None:
        self.fs, self.root = fs, root
        self.synced = 0  # directories synced because of events

    def __call__(self, paths: list[str]) -> None:
        # A file this node knows: its own stat (a changed or deleted file). Anything else (a
        # new name, a directory): its directory's listing, if this node has listed it.
        targets = set()
        for rel in paths:
            node = self._known(_namespace_path(self.root, rel))
            if node is not None and node.children is None:
                targets.add(_namespace_path(self.root, rel))
            else:
                targets.add(_namespace_path(self.root, posixpath.dirname("/" + rel.strip("/"))))
        for path in sorted(targets):
            node = self._known(path)
            if node is None or (node.children is not None and self.fs.sync.needs_load(node)):
                continue  # never listed here: nothing cached to drop
            try:
                self.fs.sync.sync(path)
                self.synced += 1
            except ShoalError as exc:  # the store is down: its sync interval is what is left
                log.warning("syncing %s after a cluster event failed: %s", path, exc)

    def _known(self, path: str) -> Inode | None:
        try:
            return self.fs.sync.ns.lookup(path)  # never loads
        except NotFound:
            return None


def fingerprint_of(node: Inode) -> str | None:
    return node.ext.fingerprint if node.ext is not None else None


def expected_fingerprint(fs: FileSystem, root: str, rel: str) -> str | None:
    """The version of ``rel`` a client's namespace holds (None: none known), sent with its
    reads so that a worker serves that version's bytes or none."""
    try:
        node = fs.sync.ns.lookup(_namespace_path(root, rel))
    except NotFound:
        return None
    return fingerprint_of(node) if node.children is None else None


def read_version(fs: FileSystem, path: str, offset: int, length: int, expected: str | None
                 ) -> bytes:  # fmt: skip
    """A worker's read of ``path`` for a client that expects version ``expected``: a worker
    that holds another version syncs the file first (its cached blocks of the old one go),
    and refuses (StaleHandle) if the store still disagrees with the client, whose view is
    then the stale one: it reads the store itself."""
    settle_version(fs, path, expected)
    return fs.read(path, offset, length)


def settle_version(fs: FileSystem, path: str, expected: str | None) -> None:
    """``read_version``'s check, for any answer about ``path``'s bytes (its reads, the
    locations of its cached blocks)."""
    if expected:
        if fingerprint_of(fs.sync.lookup(path)) != expected:
            fs.sync.sync(path)
            if fingerprint_of(fs.sync.lookup(path)) != expected:
                raise StaleHandle(f"{path}: the store holds another version than the client's")

"""Where a path is stored and which read and write types apply to it.

A path below a mount is stored in that mount's UFS (its connector and the path within it); a
path outside every mount is the namespace's own. A read or write type is looked up in order:
the one asked for, the one set on the node or its nearest ancestor (a directory's type applies
to the tree below it), the deepest path conf (engine/pathdefaults.py), the mount's option, the
configured default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

from engine import iotypes
from engine.errors import InvalidArgument, NotADirectory
from engine.inode import Inode
from engine.iotypes import ReadType, WriteType
from engine.mounts import MountTable, ufs_errors
from engine.names import check_name, parent_and_name, split_path
from engine.namespace import Namespace
from engine.pathdefaults import PathDefaults
from engine.state import Mount
from engine.sync import MetadataSync
from ufs.base import NameRules, OnStatus, UfsAttrs, UfsStatus, UnderFS
from ufs.base import join as ufs_join
from ufs.staged import StagedWrite
from ufs.uri import name_rules

# (mount, its connector, the path in its UFS) of a path below a mount
UfsTarget = tuple[Mount, UnderFS, str]


class MountConnector(UnderFS):
    """A mount's connector, opened (engine/mounts.py) at its first call. Opening fails as
    the engine's error (``Unavailable`` for a store that does not answer), which the callers'
    ``ufs_errors()`` lets through."""

    def __init__(self, mounts: MountTable, mount: Mount) -> None:
        self.mounts, self.mount = mounts, mount
        self.uri = mount.uri

    def _ufs(self) -> UnderFS:
        return self.mounts.connector(self.mount)

    def stat(self, path: str) -> UfsStatus:
        return self._ufs().stat(path)

    def list(self, path: str) -> Iterator[UfsStatus]:
        return self._ufs().list(path)

    def read(self, path: str, offset: int, length: int) -> bytes:
        return self._ufs().read(path, offset, length)

    def read_stream(
        self, path: str, offset: int, length: int, on_status: OnStatus | None = None
    ) -> Iterator[bytes]:
        return self._ufs().read_stream(path, offset, length, on_status)

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        return self._ufs().write(path, source, attrs)

    def stage(self, path: str, spool_dir: str | None = None) -> StagedWrite | None:
        return self._ufs().stage(path, spool_dir)

    def land(self, staged: StagedWrite, path: str, attrs: UfsAttrs | None = None) -> UfsStatus:
        return self._ufs().land(staged, path, attrs)

    def delete(self, path: str) -> None:
        self._ufs().delete(path)

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        self._ufs().mkdir(path, attrs)

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        return self._ufs().set_attrs(path, attrs)

    def rmdir(self, path: str) -> None:
        self._ufs().rmdir(path)

    def rename(self, src: str, dst: str) -> None:
        self._ufs().rename(src, dst)

    def link(self, src: str, dst: str) -> UfsStatus:
        return self._ufs().link(src, dst)

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        return self._ufs().mknod(path, mode, rdev, attrs)

    def check_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        self._ufs().check_xattrs(path, xattrs)

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        return self._ufs().get_xattrs(path)

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        self._ufs().set_xattrs(path, xattrs)


class Placement:
    def __init__(
        self,
        ns: Namespace,
        mounts: MountTable,
        sync: MetadataSync,
        write_type: str = "THROUGH",
        read_type: str = "CACHE",
    ) -> None:
        self.ns = ns
        self.mounts = mounts
        self.sync = sync
        self.write_type = write_type  # the configured defaults
        self.read_type = read_type
        self._rules: dict[tuple[int, int], NameRules] = {}  # (mount id, time) -> its store's
        # Before a change at a store path: pending store moves there completed, or the change
        # refused (engine/storemove.py, ``StoreMoves.check_free``; set by the file system).
        self.check_free: Callable[[Mount, str], None] | None = None
        self.pathconf = PathDefaults(ns)  # per-path defaults; the sync interval's too
        # Files (mount, path in its store) whose reads are not cached here, whatever their read
        # type: on a node that is both a cluster's worker and its client, the files other
        # workers own (engine/cluster/client.py), so that they never crowd out its own.
        self.uncached: Callable[[Mount, str], bool] | None = None
        sync.path_value = self.pathconf.value

    def target(self, path: str) -> tuple[Inode, str, UfsTarget | None]:
        """(parent directory, name, (mount, connector, UFS path) if below a mount)."""
        parents, name = parent_and_name(path)
        check_name(name)
        parent = self.sync.lookup("/" + "/".join(parents))
        if parent.children is None:
            raise NotADirectory(f"{'/' + '/'.join(parents)} is not a directory")
        where = self.sync.mount_of(parent)
        if where is None:
            return parent, name, None
        mount, rel = where
        self.ns.check_writable(parent)  # a read-only mount refuses before the UFS is touched
        return parent, name, (mount, MountConnector(self.mounts, mount), ufs_join(rel, name))

    def rules(self, mount: Mount) -> NameRules:
        """The names ``mount``'s store can hold (known from its URI: no request is sent)."""
        key = (mount.id, mount.time)
        rules = self._rules.get(key)
        if rules is None:
            with ufs_errors():
                rules = self._rules[key] = name_rules(mount.uri)
        return rules

    def check_storable(self, path: str, is_dir: bool) -> None:
        """Raises InvalidName or NameTooLong if the store ``path`` would be created in could
        not hold it (S3: a key that is not UTF-8 or over 1,024 bytes), before anything reaches
        the store or the journal. Missing levels of ``path`` (mkdir -p) are checked at once, with
        the path's end: a refusal must not leave half of them made. Reads only the namespace."""
        parts = split_path(path)
        node = self.ns.tree.root
        i = 0
        while i < len(parts) and node.children is not None and parts[i] in node.children:
            node = node.children[parts[i]]
            i += 1
        where = self.sync.mount_of(node)
        if where is None or i == len(parts):
            return  # the namespace's own, or there already (the store holds it)
        mount, rel = where
        with ufs_errors():
            self.rules(mount).check(ufs_join(rel, "/".join(parts[i:])), is_dir)

    def check_moved_tree(self, node: Inode, target: UfsTarget) -> None:
        """A directory about to be renamed to ``target``: every key below it must still fit
        the store (an object store moves them one by one, and would stop halfway)."""
        mount, _connector, dst = target
        rules = self.rules(mount)
        with ufs_errors():
            rules.check(dst, is_dir=True)
            if rules.key_max is not None:
                _check_below(rules, node, dst)

    def clear(self, mount: Mount, rel: str) -> None:
        """Before the store is changed at ``rel`` (written, made, removed, moved onto): no
        pending store move still has its content there (engine/storemove.py)."""
        if self.check_free is not None and self.ns.state.store_moves:
            self.check_free(mount, rel)

    def mount_of(self, path: str) -> Mount | None:
        """The mount that ``path`` (existing or not) would be stored in, if any."""
        parents, _name = parent_and_name(path)
        where = self.sync.mount_of(self.sync.lookup("/" + "/".join(parents)))
        return where[0] if where else None

    def path_type(self, node: Inode, which: str) -> str | None:
        """The read or write type (``which``: "read_type" or "write_type") set on ``node`` or
        its nearest ancestor that has one: a directory's type applies to the tree below it."""
        tree = self.ns.tree
        cur: Inode | None = node
        while cur is not None:
            ext = cur.ext
            if ext is not None:
                value = getattr(ext, which)
                if value:
                    return value
            if cur.parent == cur.id:
                return None
            cur = tree.find(cur.parent)
        return None

    def set_types(
        self, path: str, read_type: str | None = None, write_type: str | None = None
    ) -> Inode:
        """Sets (a type) or clears ("") the read and write types of ``path`` and the tree
        below it; None leaves one as it is."""
        changes: dict[str, str] = {}
        if read_type is not None:
            changes["read_type"] = read_type.upper()
            if changes["read_type"]:  # "" clears it
                iotypes.read_type(changes["read_type"])  # refuses an unknown one
        if write_type is not None:
            changes["write_type"] = write_type.upper()
            if changes["write_type"]:
                iotypes.write_type(changes["write_type"])
        if not changes:
            return self.sync.lookup(path)
        self.sync.lookup(path)  # loads what the path crosses
        return self.ns.setattr(path, **changes)

    def write_type_of(self, node: Inode, mount: Mount, asked: str | None) -> WriteType:
        """The write type of a file written at ``node`` (the file, or its parent directory
        when it is new) below ``mount``; ``asked`` wins."""
        return iotypes.write_type(
            (
                asked
                or self.path_type(node, "write_type")
                or self.pathconf.value(node, "write_type")
                or mount.options.get("write_type")
                or self.write_type
            ).upper()
        )

    def read_plan(self, node: Inode, asked: str | None) -> tuple[Mount, str, ReadType]:
        """(mount, UFS path, read type) of a file below a mount; ``asked`` wins."""
        where = self.sync.mount_of(node)
        if where is None:
            raise InvalidArgument(f"{self.ns.path_of(node)} is not below a mount")
        mount, rel = where
        moved = self.ns.state.store_moves.get(node.id)
        if moved is not None:  # renamed, its content still at its old path (engine/storemove.py)
            rel = moved[0]
        kind = self._read_type(node, mount, asked)
        if kind.caches and self.uncached is not None and self.uncached(mount, rel):
            kind = iotypes.read_type("NO_CACHE")
        return mount, rel, kind

    def read_type_of(self, node: Inode) -> ReadType:
        """``read_plan``'s read type alone: a hit from a lower tier asks it (whether it
        promotes), and needs no path in the store, which costs a walk that joins names. The
        enclosing mount and the nearest type set on the way are found in one walk up the tree.
        (Not kept per directory: ~1 µs a file in-process against a tier hit's ~200 µs in the
        daemon, not worth a cache to keep in step with every applied entry.)"""
        mounts, table = self.ns.state.mounts, self.ns.tree.table
        mount: Mount | None = None
        typed: str | None = None
        cur = self.ns.tree.find(node.id)
        while cur is not None:
            ext = cur.ext
            if typed is None and ext is not None and ext.read_type:
                typed = ext.read_type
            if mount is None:
                mount = mounts.get(cur.id)
            if cur.parent == cur.id or (mount is not None and typed is not None):
                break
            cur = table[cur.parent]  # a named node's parent is in the table (as path_of's)
        if mount is None:
            raise InvalidArgument(f"{self.ns.path_of(node)} is not below a mount")
        return self._read_type(node, mount, None, typed or "")

    def _read_type(
        self, node: Inode, mount: Mount, asked: str | None, typed: str | None = None
    ) -> ReadType:
        """``typed``: ``path_type(node, "read_type")`` if the caller walked for it ("": none)."""
        kind = (
            asked
            or (self.path_type(node, "read_type") if typed is None else typed)
            or self.pathconf.value(node, "read_type")
            or mount.options.get("read_type")
            or self.read_type
        ).upper()
        return iotypes.read_type(kind)


def _check_below(rules: NameRules, node: Inode, rel: str) -> None:
    for name, child in (node.children or {}).items():
        path = ufs_join(rel, name)
        rules.check(path, child.children is not None)
        _check_below(rules, child, path)

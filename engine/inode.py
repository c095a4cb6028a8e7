"""Inodes and the in-memory inode tree.

Memory is the constraint here: a training namespace holds millions of files, so an inode is a
slotted object whose rarely used attributes live in an optional ``InodeExt``, the id table is a
list indexed by id (8 bytes a slot) and repeated small values (modes, uids) are shared objects.
Only the apply functions of ``engine.state`` change a tree; operations read it to validate.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from typing import Any

from engine.errors import NotADirectory, NotFound

ROOT_ID = 1
S_IFDIR = stat.S_IFDIR
S_IFREG = stat.S_IFREG
S_IFLNK = stat.S_IFLNK
S_IFMT = 0o170000
# Special files: only a name and attributes in Shoal (the kernel serves a fifo's I/O itself).
SPECIAL_TYPES = frozenset((stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK))

# Inode.flags bits.
COMPLETE = 1  # the file's content is final (all of it is known: length, blocks)
PERSISTED = 2  # the current content version exists in the UFS
PINNED = 4  # never evict this file's blocks
# The owner, mode and mtime are provisional: its store's were not read with its listing
# (engine/provisional.py); a SetAttr of all three (the store's, once read) ends it.
PROVISIONAL = 8


class InodeExt:
    """Attributes few inodes have."""

    __slots__ = (
        "target", "media", "ttl_ms", "ttl_action", "fingerprint", "block_size", "read_type",
        "write_type", "links", "rdev", "xattrs", "atime",
    )  # fmt: skip

    def __init__(self) -> None:
        self.target: str | None = None  # symlink target
        self.media: list[str] | None = None  # pinned to these tiers
        self.ttl_ms: int | None = None
        self.ttl_action: str | None = None
        self.fingerprint: str | None = None  # of the UFS copy
        self.block_size: int | None = None
        self.read_type: str | None = None  # for this inode and the tree below it
        self.write_type: str | None = None
        # A hard-linked file's names besides (parent, name): [parent, name] pairs, in the
        # order they were made; the first takes over when the inode's own name goes.
        self.links: list[list[Any]] | None = None
        self.rdev: int | None = None  # a character or block device's number
        self.xattrs: dict[str, bytes] | None = None  # extended attributes (user.*)
        self.atime: int | None = None  # ns; None: the access time is the modification time

    def as_row(self) -> list[object]:
        return [
            self.target,
            self.media,
            self.ttl_ms,
            self.ttl_action,
            self.fingerprint,
            self.block_size,
            self.read_type,
            self.write_type,
            self.links,
            self.rdev,
            # Sorted: the same attributes give the same row (and digest) whatever their order.
            None if self.xattrs is None else dict(sorted(self.xattrs.items())),
            self.atime,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> InodeExt:
        ext = cls()
        # Columns are only ever appended: rows of older checkpoints are shorter.
        padded = row + [None] * (12 - len(row))
        ext.target, ext.media, ext.ttl_ms, ext.ttl_action, ext.fingerprint = padded[:5]
        ext.block_size, ext.read_type, ext.write_type = padded[5:8]
        links = padded[8]
        ext.links = [list(pair) for pair in links] if links else None
        ext.rdev = padded[9]
        xattrs = padded[10]
        ext.xattrs = None if xattrs is None else dict(xattrs)
        ext.atime = padded[11]
        return ext

    def empty(self) -> bool:
        return not any(v is not None for v in self.as_row())


class Inode:
    __slots__ = (
        "id",
        "parent",
        "name",
        "mode",
        "uid",
        "gid",
        "size",
        "mtime",
        "ctime",
        "version",
        "flags",
        "children",
        "ext",
    )

    def __init__(
        self,
        id: int,
        parent: int,
        name: str,
        mode: int,
        uid: int,
        gid: int,
        size: int,
        mtime: int,
        ctime: int,
        version: int,
        flags: int,
        children: dict[str, Inode] | None,
        ext: InodeExt | None,
    ) -> None:
        self.id = id
        self.parent = parent
        self.name = name
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.ctime = ctime
        self.version = version
        self.flags = flags
        self.children = children
        self.ext = ext

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def is_symlink(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK

    @property
    def nlink(self) -> int:
        """A file's names (a directory's link count is the tree's: ``InodeTree.nlink``)."""
        ext = self.ext
        return 1 + len(ext.links) if ext is not None and ext.links else 1

    @property
    def kind(self) -> str:
        fmt = self.mode & S_IFMT
        return "dir" if fmt == S_IFDIR else "symlink" if fmt == S_IFLNK else "file"

    def ensure_ext(self) -> InodeExt:
        if self.ext is None:
            self.ext = InodeExt()
        return self.ext

    def set_xattr(self, name: str, value: bytes | None) -> None:
        """Sets (None: removes) one extended attribute; an emptied ext goes."""
        ext = self.ensure_ext()
        if value is not None:
            ext.xattrs = {**(ext.xattrs or {}), name: value}
            return
        del ext.xattrs[name]  # type: ignore[union-attr]
        if not ext.xattrs:
            ext.xattrs = None
            if ext.empty():
                self.ext = None

    def __repr__(self) -> str:
        return f"Inode({self.id}, {self.kind}, parent={self.parent}, name={self.name!r})"


# One object per distinct attribute value (mode, uid, gid, flags) across all inodes: there are
# few distinct values, and an int object costs 28-32 bytes per inode otherwise.
shared_values: dict[int, int] = {}


def shared_int(value: int) -> int:
    return shared_values.setdefault(value, value)


class InodeTree:
    """Directories and files by id and by name; the structural part of ``State``."""

    __slots__ = ("table", "count", "next_id", "subdirs")

    def __init__(self) -> None:
        root = Inode(ROOT_ID, ROOT_ID, "", S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, 0, {}, None)
        self.table: list[Inode | None] = [None, root]
        self.count = 1
        # Ids are never reused, even across restarts: the checkpoint records next_id.
        self.next_id = ROOT_ID + 1
        # directory id -> how many subdirectories it holds (absent: none), for st_nlink
        self.subdirs: dict[int, int] = {}

    @property
    def root(self) -> Inode:
        return self.table[ROOT_ID]  # type: ignore[return-value]

    def get(self, ino: int) -> Inode:
        try:
            node = self.table[ino]
        except IndexError:
            node = None
        if node is None:
            raise NotFound(f"inode {ino} does not exist")
        return node

    def find(self, ino: int) -> Inode | None:
        return self.table[ino] if 0 <= ino < len(self.table) else None

    def child(self, parent: Inode, name: str) -> Inode | None:
        if parent.children is None:
            raise NotADirectory(f"{self.path_of(parent)} is not a directory")
        return parent.children.get(name)

    def resolve(self, parts: list[str]) -> Inode:
        """The inode at these path components (symlinks are not followed)."""
        node = self.root
        for i, name in enumerate(parts):
            children = node.children
            if children is None:
                raise NotADirectory("/" + "/".join(parts[:i]) + " is not a directory")
            nxt = children.get(name)
            if nxt is None:
                raise NotFound("/" + "/".join(parts[: i + 1]) + " does not exist")
            node = nxt
        return node

    def path_of(self, node: Inode) -> str:
        names = []
        while node.id != ROOT_ID:
            names.append(node.name)
            node = self.table[node.parent]  # type: ignore[assignment]
        return "/" + "/".join(reversed(names))

    def is_ancestor(self, maybe_ancestor: int, node: Inode) -> bool:
        while True:
            if node.id == maybe_ancestor:
                return True
            if node.id == ROOT_ID:
                return False
            node = self.table[node.parent]  # type: ignore[assignment]

    def nlink(self, node: Inode) -> int:
        """st_nlink: a directory's 2 (its name and its ``.``) plus one per subdirectory (its
        ``..``), kept as the tree changes; a file's names."""
        if node.children is not None:
            return 2 + self.subdirs.get(node.id, 0)
        return node.nlink

    def names_of(self, node: Inode) -> list[tuple[int, str]]:
        """Every (parent, name) of ``node``: its own first, then its hard links'."""
        names = [(node.parent, node.name)]
        ext = node.ext
        if ext is not None and ext.links:
            names.extend((pid, name) for pid, name in ext.links)
        return names

    # -- structural changes, called only by State's apply functions ---------------------------

    def detach(self, node: Inode) -> None:
        parent = self.table[node.parent]
        del parent.children[node.name]  # type: ignore[union-attr]

    def attach(self, node: Inode, parent: Inode, name: str) -> None:
        node.parent = parent.id
        node.name = name
        parent.children[name] = node  # type: ignore[index]

    def count_subdir(self, parent_id: int, delta: int) -> None:
        count = self.subdirs.get(parent_id, 0) + delta
        if count:
            self.subdirs[parent_id] = count
        else:
            self.subdirs.pop(parent_id, None)

    def add_name(self, node: Inode, parent: Inode, name: str) -> None:
        """A hard link: ``node`` (not a directory) is also ``name`` in ``parent``."""
        parent.children[name] = node  # type: ignore[index]
        ext = node.ensure_ext()
        if ext.links is None:
            ext.links = []
        ext.links.append([parent.id, name])

    def remove_name(self, node: Inode, parent: Inode, name: str) -> bool:
        """Takes ``name`` in ``parent`` from ``node``; True if it was its last (``node`` is
        then out of the tree, for ``drop_subtree``)."""
        del parent.children[name]  # type: ignore[union-attr]
        last = self._forget_name(node, parent.id, name)
        if last and node.children is not None:
            self.count_subdir(parent.id, -1)
        return last

    def _forget_name(self, node: Inode, parent_id: int, name: str) -> bool:
        """``remove_name`` without the directory's side (a directory being dropped)."""
        ext = node.ext
        links = ext.links if ext is not None else None
        if not links:
            return True
        if node.parent == parent_id and node.name == name:
            # Deterministic: the oldest other name becomes the inode's own.
            pid, node.name = links.pop(0)
            parent = self.table[pid]  # None: a directory being dropped
            node.parent = parent.id if parent is not None else pid
        else:
            links.remove([parent_id, name])
        if not links:
            ext.links = None  # type: ignore[union-attr]
            if ext.empty():  # type: ignore[union-attr]
                node.ext = None
        return False

    def rename_name(self, node: Inode, src: Inode, src_name: str, dst: Inode, name: str) -> None:
        """Moves ``node``'s name ``src_name`` in ``src`` to ``name`` in ``dst``."""
        del src.children[src_name]  # type: ignore[union-attr]
        dst.children[name] = node  # type: ignore[index]
        if node.parent == src.id and node.name == src_name:
            node.parent = dst.id
            node.name = name
            if node.children is not None and src is not dst:
                self.count_subdir(src.id, -1)
                self.count_subdir(dst.id, 1)
            return
        links: list[list[Any]] = node.ext.links  # type: ignore[union-attr,assignment]
        links[links.index([src.id, src_name])] = [dst.id, name]

    def drop_subtree(self, node: Inode) -> list[Inode]:
        """Forgets ``node`` (already out of the tree) and everything below it; returns what it
        dropped. A file below with a name outside keeps that name and stays."""
        dropped = []
        stack = [node]
        while stack:
            cur = stack.pop()
            dropped.append(cur)
            self.table[cur.id] = None
            if cur.children:
                self.subdirs.pop(cur.id, None)
                for name, child in cur.children.items():
                    if child.children is not None or self._forget_name(child, cur.id, name):
                        stack.append(child)
        self.count -= len(dropped)
        return dropped

    def walk(self) -> Iterator[Inode]:
        """Every inode, in id order."""
        for node in self.table:
            if node is not None:
                yield node

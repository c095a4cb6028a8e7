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

# Inode.flags bits.
COMPLETE = 1  # the file's content is final (all of it is known: length, blocks)
PERSISTED = 2  # the current content version exists in the UFS
PINNED = 4  # never evict this file's blocks


class InodeExt:
    """Attributes few inodes have."""

    __slots__ = (
        "target", "media", "ttl_ms", "ttl_action", "fingerprint", "block_size", "read_type",
        "write_type", "xattrs", "atime",
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
            # Sorted: the same attributes give the same row (and digest) whatever their order.
            None if self.xattrs is None else dict(sorted(self.xattrs.items())),
            self.atime,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> InodeExt:
        ext = cls()
        padded = row + [None] * (10 - len(row))  # rows of older checkpoints are shorter
        ext.target, ext.media, ext.ttl_ms, ext.ttl_action, ext.fingerprint = padded[:5]
        ext.block_size, ext.read_type, ext.write_type = padded[5:8]
        xattrs = padded[8]
        ext.xattrs = None if xattrs is None else dict(xattrs)
        ext.atime = padded[9]
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
    def kind(self) -> str:
        fmt = self.mode & S_IFMT
        return "dir" if fmt == S_IFDIR else "symlink" if fmt == S_IFLNK else "file"

    def ensure_ext(self) -> InodeExt:
        if self.ext is None:
            self.ext = InodeExt()
        return self.ext

    def __repr__(self) -> str:
        return f"Inode({self.id}, {self.kind}, parent={self.parent}, name={self.name!r})"


# One object per distinct attribute value (mode, uid, gid, flags) across all inodes: there are
# few distinct values, and an int object costs 28-32 bytes per inode otherwise.
shared_values: dict[int, int] = {}


def shared_int(value: int) -> int:
    return shared_values.setdefault(value, value)


class InodeTree:
    """Directories and files by id and by name; the structural part of ``State``."""

    __slots__ = ("table", "count", "next_id")

    def __init__(self) -> None:
        root = Inode(ROOT_ID, ROOT_ID, "", S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, 0, {}, None)
        self.table: list[Inode | None] = [None, root]
        self.count = 1
        # Ids are never reused, even across restarts: the checkpoint records next_id.
        self.next_id = ROOT_ID + 1

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

    # -- structural changes, called only by State's apply functions ---------------------------

    def detach(self, node: Inode) -> None:
        parent = self.table[node.parent]
        del parent.children[node.name]  # type: ignore[union-attr]

    def attach(self, node: Inode, parent: Inode, name: str) -> None:
        node.parent = parent.id
        node.name = name
        parent.children[name] = node  # type: ignore[index]

    def drop_subtree(self, node: Inode) -> list[Inode]:
        """Forgets ``node`` (already detached) and everything below it; returns what it dropped."""
        dropped = []
        stack = [node]
        while stack:
            cur = stack.pop()
            dropped.append(cur)
            self.table[cur.id] = None
            if cur.children:
                stack.extend(cur.children.values())
        self.count -= len(dropped)
        return dropped

    def walk(self) -> Iterator[Inode]:
        """Every inode, in id order."""
        for node in self.table:
            if node is not None:
                yield node

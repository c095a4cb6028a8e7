"""POSIX rules for requests made on behalf of a process: who owns what it makes, with which
mode, what it may remove, how large a file may grow, and which error wins when several apply.

Every rule of the kind is here; engine/byinode.py applies them to the requests a kernel
frontend (fuse/operations.py) makes, before the change itself goes through the FileSystem.

What the kernel decides, and is not repeated here: Shoal is mounted with
``default_permissions``, so the kernel checks mode bits against the caller before a request
arrives (EACCES) and refuses chmod and chown by anyone but the owner (EPERM).

Errno precedence follows Linux's when several errors apply to one request:

1. the inode the request names: ENOENT if it is gone, ENOTDIR if it must be a directory;
2. the name: EINVAL (empty, ``/``, NUL, ``.``, ``..``), ENAMETOOLONG (over 255 bytes);
3. the store: EROFS on a read-only mount (before the entry is looked at, as a read-only
   Linux mount refuses before the lookup), and EINVAL for a rename flag it cannot honour;
4. the entry: ENOENT if it must exist, EEXIST if it must not (RENAME_NOREPLACE included);
5. the caller's right: EPERM from the sticky bit;
6. the kind of entry: EISDIR, ENOTDIR;
7. the rest of the change: ENOTEMPTY, EBUSY (a mount point), EFBIG.

Rules raise the engine's errors (engine/errors.py); fuse/boundary.py turns them into errno.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from engine.errors import (
    BadDescriptor,
    FileTooLarge,
    InvalidArgument,
    IsADirectory,
    NotADirectory,
    NotFound,
    NotPermitted,
    NotSupported,
    PermissionDenied,
    StaleHandle,
)
from engine.inode import Inode, InodeTree
from engine.names import check_name
from engine.namespace import Namespace

PERMISSION_BITS = 0o7777  # what a mode given by a caller may set: never the file type


@dataclass(frozen=True, slots=True)
class Caller:
    """The process a request is made for. ``groups``: its supplementary groups where the
    frontend knows them (pyfuse3 does not tell: for the mount the kernel checks group
    permissions itself; the client socket reads them from /proc for ``may_access``)."""

    uid: int
    gid: int
    umask: int = 0
    groups: frozenset[int] = frozenset()

    @property
    def privileged(self) -> bool:
        """Root: the sticky bit does not hold it back (CAP_FOWNER)."""
        return self.uid == 0


# -- what a request names (precedence 1 and 2) -----------------------------------------------


def inode(tree: InodeTree, ino: int) -> Inode:
    node = tree.find(ino)
    if node is None:
        raise NotFound(f"inode {ino} does not exist")
    return node


def directory(tree: InodeTree, ino: int) -> Inode:
    node = inode(tree, ino)
    if node.children is None:
        raise NotADirectory(f"inode {ino} is not a directory")
    return node


def parent_for(tree: InodeTree, parent_id: int, name: str) -> Inode:
    """The directory a request makes, removes or renames ``name`` in; its name checked."""
    parent = directory(tree, parent_id)
    check_name(name)
    return parent


def dot_entry(tree: InodeTree, parent: Inode, name: str) -> Inode | None:
    """What ``.`` and ``..`` name in ``parent`` (the kernel may still ask); None for any other
    name, which is then checked as a stored name."""
    if name == ".":
        return parent
    if name == "..":
        return inode(tree, parent.parent)
    check_name(name)
    return None


def entry(parent: Inode, name: str) -> Inode:
    node = parent.children.get(name) if parent.children is not None else None
    if node is None:
        raise NotFound(f"no entry {name!r} in inode {parent.id}")
    return node


def symlink_target(node: Inode) -> str:
    target = node.ext.target if node.ext is not None else None
    if target is None:
        raise InvalidArgument(f"inode {node.id} is not a symbolic link")
    return target


def still_there(tree: InodeTree, ino: int) -> Inode:
    """The inode an open handle reads: unlinked or replaced meanwhile, its blocks went with
    it and its old name may hold another file now, so ESTALE rather than someone else's
    bytes."""
    node = tree.find(ino)
    if node is None:
        raise StaleHandle(f"inode {ino} was removed while open")
    return node


# -- new entries: ownership and mode ---------------------------------------------------------


def owner_of_new(caller: Caller, parent: Inode) -> tuple[int, int]:
    """The caller's uid; its gid, or the parent's group if the parent is setgid."""
    gid = parent.gid if parent.mode & stat.S_ISGID else caller.gid
    return caller.uid, gid


def mode_of_new(caller: Caller, parent: Inode, mode: int, *, directory: bool) -> int:
    """The permission bits asked for less the caller's umask; a directory made in a setgid
    directory is setgid too, so the group passes on down the tree (a file is not)."""
    mode = mode & ~caller.umask & PERMISSION_BITS
    if directory and parent.mode & stat.S_ISGID:
        mode |= stat.S_ISGID
    return mode


def mode_change(mode: int) -> int:
    """chmod sets permission bits only."""
    return mode & PERMISSION_BITS


# -- removing and renaming: the sticky bit ---------------------------------------------------


def check_may_remove(caller: Caller, parent: Inode, node: Inode) -> None:
    """In a sticky directory (/tmp), only root, the entry's owner or the directory's owner may
    unlink or rename it, or rename another entry over it."""
    if not parent.mode & stat.S_ISVTX or caller.privileged:
        return
    if caller.uid in (node.uid, parent.uid):
        return
    raise NotPermitted(f"{node.name!r} is in a sticky directory and not the caller's")


def check_remove(ns: Namespace, caller: Caller, parent: Inode, name: str) -> None:
    """unlink and rmdir, after ``parent_for``: EROFS, then (for an entry that exists; a missing
    one is the change's ENOENT) the sticky bit. The kind of entry and emptiness come after,
    from the change itself."""
    ns.check_writable(parent)
    node = parent.children.get(name) if parent.children is not None else None
    if node is not None:
        check_may_remove(caller, parent, node)


def check_rename(
    ns: Namespace,
    caller: Caller,
    old: tuple[Inode, str],
    new: tuple[Inode, str],
    *,
    noreplace: bool,
) -> None:
    """rename, after ``check_exchange`` and ``parent_for`` on both sides: EROFS, then ENOENT
    (source) and EEXIST (RENAME_NOREPLACE; both from the change itself), then the sticky bit
    of the source's directory and, for an entry replaced, of the target's. A rename onto
    itself is a no-op that nothing refuses."""
    (old_parent, old_name), (new_parent, new_name) = old, new
    ns.check_writable(old_parent)
    ns.check_writable(new_parent)
    node = old_parent.children.get(old_name)  # type: ignore[union-attr]
    existing = new_parent.children.get(new_name)  # type: ignore[union-attr]
    if node is None or existing is node or (existing is not None and noreplace):
        return
    check_may_remove(caller, old_parent, node)
    if existing is not None:
        check_may_remove(caller, new_parent, existing)


def check_exchange(exchange: bool) -> None:
    """RENAME_EXCHANGE is refused before anything else is looked at: an object store cannot
    swap two names atomically."""
    if exchange:
        raise InvalidArgument("an exchanging rename is not supported")


# -- content: opening, sizes -----------------------------------------------------------------


def check_open(ns: Namespace, node: Inode, writing: bool) -> None:
    """EISDIR for a directory; EROFS for writing on a read-only mount."""
    if node.children is not None:
        raise IsADirectory(f"inode {node.id} is a directory")
    if writing:
        ns.check_writable(node)


def check_size(size: int, limit: int) -> None:
    """A file's content reaches the UFS whole, zeros of a sparse tail included: past ``limit``
    (the mount's fuse.max_file_size) a write or truncate is refused rather than uploaded."""
    if size > limit:
        raise FileTooLarge(f"a file of {size} bytes would be larger than the limit of {limit}")


def check_truncate(ns: Namespace, node: Inode, size: int, limit: int) -> None:
    """EISDIR, then EFBIG, then EROFS."""
    if node.children is not None:
        raise IsADirectory(f"inode {node.id} is a directory")
    check_size(size, limit)
    ns.check_writable(node)


def check_fallocate(mode: int, offset: int, length: int, keep_size: int) -> None:
    """fallocate's modes: 0 and ``keep_size`` only (no hole punching, no zeroing)."""
    if mode & ~keep_size:
        raise NotSupported(f"fallocate mode {mode:#x}: only 0 and KEEP_SIZE are supported")
    if offset < 0 or length <= 0:
        raise InvalidArgument(f"fallocate of {length} bytes at {offset}")


def check_write(writable: bool, offset: int, length: int, limit: int) -> None:
    """EBADF through a handle not opened for writing, then EFBIG."""
    if not writable:
        raise BadDescriptor("the file is not open for writing")
    check_size(offset + length, limit)


# -- access by mode bits (frontends the kernel does not check for) ---------------------------

R_OK, W_OK, X_OK = 4, 2, 1


def may_access(node: Inode, caller: Caller, want: int) -> bool:
    """Whether ``caller`` may ``want`` (R_OK | W_OK | X_OK) ``node`` by its mode bits, as the
    kernel's generic_permission decides for the mount (no ACLs here): root reads and writes
    anything and searches any directory, but executes a file only if someone may. The mount
    has the kernel decide this; the fsspec client's socket (fuse/clientserver.py) asks here."""
    mode = node.mode
    if caller.uid == 0:
        return not want & X_OK or node.children is not None or bool(mode & 0o111)
    if caller.uid == node.uid:
        bits = mode >> 6
    elif caller.gid == node.gid or node.gid in caller.groups:
        bits = mode >> 3
    else:
        bits = mode
    return bits & want == want


def check_access(node: Inode, caller: Caller, want: int) -> None:
    """``may_access`` or EACCES."""
    if not may_access(node, caller, want):
        raise PermissionDenied(f"{node.name!r}: permission denied to uid {caller.uid}")


# -- access times ------------------------------------------------------------------------------

RELATIME_S = 24 * 3600  # an access time older than this moves at the next read anyway


def access_time(node: Inode) -> int:
    """st_atime: the one kept, or the modification time where none was (never read since
    Shoal kept access times, or loaded from a store)."""
    ext = node.ext
    return ext.atime if ext is not None and ext.atime is not None else node.mtime


def relatime_due(node: Inode, now: int) -> bool:
    """Whether a read moves the access time, as Linux's relatime says: when it is not after
    the last modification or change, or older than a day."""
    atime = access_time(node)
    return atime <= node.mtime or atime <= node.ctime or now - atime >= RELATIME_S * 10**9

"""Hard links and special files below a mount: made in the store first, then journaled (as
engine/ufsfirst.py does for mkdir, delete and rename); and a linked file's other names in its
store kept holding its content.

What a store holds (docs/mount.md): a local store a real hard link (``os.link``) and the real
special file (``os.mknod``); S3 a copy of the object for a link, and an empty object whose
``x-amz-meta-mode`` carries the file type for a special file, as s3fs-fuse writes it.

A linked file's content reaches its store under its own name, (parent, name) of the inode,
the one its reads and uploads use; the store's copies under its other names then follow it
(``mirror_names``: relinked on a local store, copied on S3), so every name of the file shows
its content there too, and any of them can take over when the inode's own name is removed.
Metadata sync follows the store only through that own name (engine/sync.py).

A link is made in the store only when the file's current content is there (persisted);
otherwise there is nothing to link yet, and ``mirror_names`` makes the store's names when
the content lands. A kill between the store's step and the journal's leaves the store one
step ahead, as for every UFS-first change: the next listing shows the new name as a file of
its own (the same bytes), or the special file as one Shoal did not make.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from engine.errors import CrossDevice, InvalidArgument, NotADirectory
from engine.inode import S_IFMT, SPECIAL_TYPES, Inode
from engine.mounts import ufs_errors
from engine.namespace import Namespace
from engine.placement import Placement
from engine.state import PERSISTED, Mount
from engine.sync import MetadataSync
from journal import entries as E
from ufs.base import UfsAttrs, UnderFS
from ufs.base import join as ufs_join
from ufs.errors import UfsError

log = logging.getLogger(__name__)


class LinkChanges:
    def __init__(
        self,
        ns: Namespace,
        placement: Placement,
        holding: Callable[[Inode], AbstractContextManager[None]],
    ) -> None:
        self.ns = ns
        self.placement = placement
        self.sync: MetadataSync = placement.sync
        # Keeps the persister off a file (engine/ufsfirst.py's ``holding``): an upload landing
        # between the look at the file and its Link would mirror to the names it has so far.
        self.holding = holding

    def link(self, node: Inode, path: str) -> Inode:
        """``path`` (its directory exists, the name does not) becomes another name of file
        ``node``. EEXIST before EPERM (a directory), as Linux answers."""
        ns = self.ns
        parent, name, ufs = self.placement.target(path)
        with self.holding(node):
            with ns.lock:
                ns.check_link(node, parent, name)
                src = self.sync.mount_of(node)
                in_store = bool(node.flags & PERSISTED)
            if ufs is None and src is None:
                return ns.link_in(node.id, parent.id, name)
            if ufs is None or src is None or src[0].id != ufs[0].id:
                raise CrossDevice(f"{path} and {ns.path_of(node)} are not on the same store")
            _mount, connector, rel = ufs
            if in_store:
                with ufs_errors():
                    connector.link(src[1], rel)
            return ns.link_in(node.id, parent.id, name)

    def hand_over(self, node: Inode | None, parent: Inode, name: str) -> None:
        """Before ``name`` in ``parent`` goes (unlink, or a rename over it): if it is the own
        name of a file in the store that keeps other names, the name taking over is given the
        content in the store first. It may lack it (a link made before the content got there,
        then a kill before ``mirror_names``; a copy that failed), and reads and uploads will
        use it."""
        ns = self.ns
        with ns.lock:
            if node is None or node.nlink < 2 or not node.flags & PERSISTED:
                return
            if (node.parent, node.name) != (parent.id, name):
                return
            pid, heir = node.ext.links[0]  # type: ignore[union-attr,index]
            heir_dir = ns.tree.find(pid)
            src = self.sync.mount_of(node)
            dst = self.sync.mount_of(heir_dir) if heir_dir is not None else None
        if src is None or dst is None or src[0].id != dst[0].id:
            return
        with ufs_errors():
            self.placement.mounts.connector(src[0]).link(src[1], ufs_join(dst[1], heir))

    def mknod(self, path: str, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        """A special file (``mode``'s type bits: a fifo, a socket, a device) at ``path``."""
        if mode & S_IFMT not in SPECIAL_TYPES:
            raise InvalidArgument(f"mode {mode:#o} is not that of a special file")
        ns = self.ns
        parent, name, ufs = self.placement.target(path)
        with ns.lock:
            ns.check_new_name(parent, name)
        if ufs is None:
            return ns.create_in(parent.id, name, mode, uid, gid, rdev)
        _mount, connector, rel = ufs
        with ufs_errors():
            status = connector.mknod(rel, mode, rdev, UfsAttrs(mode & 0o7777, uid, gid))
        with ns.lock:
            if parent.children is None:
                raise NotADirectory(f"{ns.path_of(parent)} is not a directory")
            seq, node = ns.create_locked(parent, name, mode, uid, gid, rdev)
            now = time.time_ns()
            seq = ns.gate.commit(
                E.UfsFingerprint(node.id, status.fingerprint, 0, status.mtime_ns or now, now)
            )
        ns.gate.durable(seq)
        return node


def mirror_names(
    ns: Namespace, sync: MetadataSync, connector: UnderFS, node: Inode, mount: Mount, rel: str
) -> None:
    """After file ``node``'s content reached its store at ``rel`` (its own name): its other
    names in that store made to hold it too. A failure leaves that copy stale, not the
    file: it is read through its own name; the next write makes the copies again."""
    targets = []
    with ns.lock:
        for pid, name in ns.tree.names_of(node)[1:]:
            parent = ns.tree.find(pid)
            where = sync.mount_of(parent) if parent is not None else None
            if where is not None and where[0].id == mount.id:
                targets.append(ufs_join(where[1], name))
    for target in targets:
        try:
            connector.link(rel, target)
        except UfsError as exc:
            log.warning("%s: the store's copy under this other name is stale: %s", target, exc)

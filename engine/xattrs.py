"""Extended attributes: ``user.*`` ones kept in the namespace (journaled, checkpointed) and
handed to the store of the file they belong to.

On a store the attributes go where the store keeps them (``UnderFS.set_xattrs``: real xattrs on
a local directory, object metadata on S3), first, outside the lock, then the journal: a store
that cannot keep them (S3's 2 KB of metadata, a file system without xattrs) refuses before
anything is journaled. A file whose content is not in its store yet (created and not committed,
or cached and not uploaded) gets them when its content gets there: the write path and the
persister call ``carry_to_store`` after every write of a file's content, which on a local store
also restores the attributes a rewrite (a new file renamed over the old) would drop.

Other namespaces are refused, as a file system without them does: getxattr answers ENODATA
(nothing is there: the kernel's security.capability check on every write, and ``cp -a`` /
``rsync -A`` probing for ACLs, go on), setxattr and removexattr EOPNOTSUPP (``cp -a`` then
falls back to the mode bits for a plain ACL). POSIX ACLs are engine/acls.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from engine.errors import InvalidArgument, NoAttribute, NotPermitted, NotSupported
from engine.inode import PERSISTED, S_IFDIR, S_IFMT, S_IFREG, Inode
from engine.mounts import ufs_errors
from engine.namespace import Namespace
from engine.nodechecks import XATTR_NAME_MAX, XATTR_PREFIX, XATTR_SIZE_MAX
from engine.placement import MountConnector, Placement
from journal import entries as E
from ufs.base import UfsStatus, UnderFS
from ufs.errors import UfsError

log = logging.getLogger(__name__)


def xattrs_of(node: Inode) -> dict[str, bytes]:
    ext = node.ext
    return dict(ext.xattrs) if ext is not None and ext.xattrs else {}


def carry_to_store(
    connector: UnderFS, rel: str, xattrs: Mapping[str, bytes], status: UfsStatus
) -> UfsStatus:
    """After ``status``'s content was written at ``rel``: the file's attributes set there too;
    the file's status as it is now (S3 copies an object onto itself to change its metadata).
    A store that refuses them costs the store's copy, never the write: logged."""
    if not xattrs:
        return status
    try:
        connector.set_xattrs(rel, xattrs)
        return connector.stat(rel)
    except UfsError as exc:
        log.error("%s: extended attributes not kept by the store: %s", rel, exc)
        return status


class ExtendedAttributes:
    def __init__(self, ns: Namespace, placement: Placement) -> None:
        self.ns = ns
        self.placement = placement

    def get(self, ino: int, name: str) -> bytes:
        node = self.ns.tree.get(ino)
        value = xattrs_of(node).get(name) if name.startswith(XATTR_PREFIX) else None
        if value is None:
            raise NoAttribute(f"inode {ino} has no attribute {name!r}")
        return value

    def names(self, ino: int) -> list[str]:
        return sorted(xattrs_of(self.ns.tree.get(ino)))

    def set(self, ino: int, name: str, value: bytes | None) -> None:
        """Sets (``value`` None: removes) attribute ``name``. setxattr's XATTR_CREATE and
        XATTR_REPLACE are pyfuse3's to answer (by a getxattr first)."""
        node = self.ns.tree.get(ino)
        _check(node, name, value)
        self.ns.check_writable(node)
        with self.ns.lock:
            xattrs = _changed(node, name, value)
        where = self.placement.sync.mount_of(node)
        if where is not None:
            connector = MountConnector(self.placement.mounts, where[0])
            with ufs_errors():
                connector.check_xattrs(where[1], xattrs)
                if node.children is not None or node.flags & PERSISTED:
                    connector.set_xattrs(where[1], xattrs)
        with self.ns.lock:
            if xattrs_of(node).get(name) == value:
                return  # a listing of the store found the change first (or there is none)
            _changed(node, name, value)  # the store's answer came after another change?
            seq = self.ns.gate.commit(E.SetXattr(node.id, name, value, time.time_ns()))
        self.ns.gate.durable(seq)


def _check(node: Inode, name: str, value: bytes | None) -> None:
    if not name.startswith(XATTR_PREFIX):
        raise NotSupported(f"extended attribute {name!r}: only user.* attributes are kept")
    if node.mode & S_IFMT not in (S_IFREG, S_IFDIR):
        raise NotPermitted(f"inode {node.id}: user.* attributes are for files and directories")
    if name == XATTR_PREFIX or "\0" in name or len(name.encode()) > XATTR_NAME_MAX:
        raise InvalidArgument(f"{name[:80]!r} is not a valid attribute name")
    if value is not None and len(value) > XATTR_SIZE_MAX:
        raise InvalidArgument(f"attribute value of {len(value)} bytes, over {XATTR_SIZE_MAX}")


def _changed(node: Inode, name: str, value: bytes | None) -> dict[str, bytes]:
    """The node's attributes with the change made (ENODATA: removing one it does not have)."""
    xattrs = xattrs_of(node)
    if value is None:
        if name not in xattrs:
            raise NoAttribute(f"inode {node.id} has no attribute {name!r}")
        del xattrs[name]
    else:
        xattrs[name] = value
    return xattrs

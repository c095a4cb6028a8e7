"""The owner, mode and mtime a name loaded from a store gets, and the change that follows the
store when a later listing finds them changed (engine/sync.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from engine.inode import PERSISTED, PROVISIONAL, Inode
from journal import entries as E
from ufs.base import UfsStatus

# What a name gets where its store keeps no owner or mode (S3 objects without metadata).
DEFAULT_FILE_MODE, DEFAULT_DIR_MODE, DEFAULT_UID, DEFAULT_GID = 0o644, 0o755, 0, 0
# What a file gets while its store's owner and mode are unread (engine/provisional.py): the
# defaults' owner bits alone, root's. No user is shown more than the store may grant, and the
# kernel's permission check (default_permissions) refuses every user but root, then asks again
# (a GETATTR, which reads the store's) before it decides: no other user reads a byte first.
PROVISIONAL_FILE_MODE = DEFAULT_FILE_MODE & 0o700


def attrs_of(status: UfsStatus) -> tuple[int, int, int]:
    """(mode, uid, gid) a name loaded from ``status`` gets: the store's, else the defaults;
    provisional ones where the store's were not read."""
    if not status.attrs_known:
        return PROVISIONAL_FILE_MODE, DEFAULT_UID, DEFAULT_GID
    default = DEFAULT_DIR_MODE if status.is_dir else DEFAULT_FILE_MODE
    return (
        default if status.mode is None else status.mode,
        DEFAULT_UID if status.uid is None else status.uid,
        DEFAULT_GID if status.gid is None else status.gid,
    )


def attr_change(node: Inode, status: UfsStatus, mtime: int | None = None) -> E.SetAttr | None:
    """The SetAttr that gives ``node`` the owner and mode ``status`` shows, if they differ (a
    store that keeps none changes nothing); for a directory its mtime too: the store's, else
    ``mtime``. (A file's mtime changes with its content, by its UfsFingerprint.) A file with
    provisional ones gets all of the store's (``completion``), if ``status`` shows them."""
    if node.flags & PROVISIONAL and status.attrs_known and not status.is_dir:
        return completion(node, status)
    mode = status.mode if status.mode != node.mode & 0o7777 else None
    uid = status.uid if status.uid != node.uid else None
    gid = status.gid if status.gid != node.gid else None
    want = (status.mtime_ns or mtime) if status.is_dir and node.children is not None else None
    new_mtime = want if want and want != node.mtime else None
    if mode is None and uid is None and gid is None and new_mtime is None:
        return None
    return E.SetAttr(node.id, time.time_ns(), mode=mode, uid=uid, gid=gid, mtime=new_mtime)


def completion(node: Inode, status: UfsStatus) -> E.SetAttr:
    """The SetAttr that gives a file with provisional attributes the ones its store keeps
    (``status``: a stat's or a GET's), all three, which ends their being provisional; its
    mtime too while its content is that copy."""
    mode, uid, gid = attrs_of(status)
    ext = node.ext
    own = node.flags & PERSISTED and ext is not None and ext.fingerprint == status.fingerprint
    mtime = status.mtime_ns if own and status.mtime_ns != node.mtime else None
    return E.SetAttr(node.id, time.time_ns(), mode=mode, uid=uid, gid=gid, mtime=mtime)


def new_copy(
    node: Inode, status: UfsStatus, block_size: int, attrs: Sequence[E.UfsFingerprint | E.SetAttr]
) -> list[E.UfsFingerprint | E.SetAttr]:
    """The entries that make ``node`` follow a new store copy ``status`` (a new content
    version), ``attrs`` the changes of its owner and mode found with it. Where the copy's were
    not read, the file goes back to the provisional ones first if it shows more (the old copy's
    may have been wider than the new one's), and its fingerprint says they are provisional."""
    now = time.time_ns()
    fingerprint = E.UfsFingerprint(
        node.id, status.fingerprint, status.size, status.mtime_ns or now, now, block_size,
        provisional=not status.attrs_known,
    )  # fmt: skip
    if status.attrs_known:
        return [fingerprint, *attrs]
    want = (PROVISIONAL_FILE_MODE, DEFAULT_UID, DEFAULT_GID)
    if (node.mode & 0o7777, node.uid, node.gid) == want:
        return [fingerprint]
    # A SetAttr of all three ends provisional attributes: it comes before the fingerprint.
    narrow = E.SetAttr(node.id, now, mode=want[0], uid=want[1], gid=want[2])
    return [narrow, fingerprint]

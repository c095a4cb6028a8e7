"""The owner, mode and mtime a name loaded from a store gets, and the change that follows the
store when a later listing finds them changed (engine/sync.py)."""

from __future__ import annotations

import time

from engine.inode import Inode
from journal import entries as E
from ufs.base import UfsStatus

# What a name gets where its store keeps no owner or mode (S3 objects without metadata).
DEFAULT_FILE_MODE, DEFAULT_DIR_MODE, DEFAULT_UID, DEFAULT_GID = 0o644, 0o755, 0, 0


def attrs_of(status: UfsStatus) -> tuple[int, int, int]:
    """(mode, uid, gid) a name loaded from ``status`` gets: the store's, else the defaults."""
    default = DEFAULT_DIR_MODE if status.is_dir else DEFAULT_FILE_MODE
    return (
        default if status.mode is None else status.mode,
        DEFAULT_UID if status.uid is None else status.uid,
        DEFAULT_GID if status.gid is None else status.gid,
    )


def attr_change(node: Inode, status: UfsStatus, mtime: int | None = None) -> E.SetAttr | None:
    """The SetAttr that gives ``node`` the owner and mode ``status`` shows, if they differ (a
    store that keeps none changes nothing); for a directory its mtime too: the store's, else
    ``mtime``. (A file's mtime changes with its content, by its UfsFingerprint.)"""
    mode = status.mode if status.mode != node.mode & 0o7777 else None
    uid = status.uid if status.uid != node.uid else None
    gid = status.gid if status.gid != node.gid else None
    want = (status.mtime_ns or mtime) if status.is_dir and node.children is not None else None
    new_mtime = want if want and want != node.mtime else None
    if mode is None and uid is None and gid is None and new_mtime is None:
        return None
    return E.SetAttr(node.id, time.time_ns(), mode=mode, uid=uid, gid=gid, mtime=new_mtime)

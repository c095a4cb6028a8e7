"""What a node may be given, judged alike by apply (engine/state.py) and the commit gate
(engine/admission.py): a stale copy in its store (Rename.stale, StoreCopy) and an extended
attribute (SetXattr). Each answers why not, or None; the engine's operations and fsck ask the
same questions."""

from __future__ import annotations

from engine.inode import PERSISTED, S_IFDIR, S_IFMT, S_IFREG, Inode


def stale_problem(node: Inode, stale: str | None) -> str | None:
    """Why a stale copy (Rename's ``stale``, StoreCopy's fingerprint) cannot be recorded on
    ``node`` (see journal/entries.py); None when it can (or there is none). Only a file not
    persisted can have a copy in the store that is not its content: a persisted one's copy is
    its content, and a directory has no copy of its own."""
    if stale is None:
        return None
    if not stale:
        return "an empty stale copy fingerprint"
    if node.children is not None:
        return f"directory {node.id} cannot have a stale copy"
    if node.flags & PERSISTED:
        return f"inode {node.id} is persisted: its own copy was moved, nothing stale is left"
    return None


XATTR_PREFIX = "user."  # the only namespace of extended attributes kept
XATTR_NAME_MAX = 255  # bytes, as Linux (XATTR_NAME_MAX)
XATTR_SIZE_MAX = 65536  # bytes of one value, as Linux (XATTR_SIZE_MAX)


def xattr_problem(node: Inode, name: str, value: bytes | None) -> str | None:
    """Why extended attribute ``name`` of ``node`` cannot be set to ``value`` (None: removed);
    None when it can. The commit gate and apply both judge a SetXattr by this."""
    if node.mode & S_IFMT not in (S_IFREG, S_IFDIR):
        return f"inode {node.id} is neither a regular file nor a directory"
    if not name.startswith(XATTR_PREFIX) or name == XATTR_PREFIX or "\0" in name:
        return f"{name!r} is not a user.* attribute name"
    try:
        size = len(name.encode())
    except UnicodeEncodeError:  # undecodable bytes (surrogates): not storable
        return f"attribute name {name!r} is not UTF-8"
    if size > XATTR_NAME_MAX:
        return f"attribute name of {size} bytes, over {XATTR_NAME_MAX}"
    if value is None:
        xattrs = node.ext.xattrs if node.ext is not None else None
        if not xattrs or name not in xattrs:
            return f"inode {node.id} has no attribute {name!r}"
    elif len(value) > XATTR_SIZE_MAX:
        return f"attribute value of {len(value)} bytes, over {XATTR_SIZE_MAX}"
    return None

"""What a node may be given, judged alike by apply (engine/state.py) and the commit gate
(engine/admission.py): a stale copy in its store (Rename.stale, StoreCopy) and an extended
attribute (SetXattr), staged content (ContentCommitted), a pending store move (Rename's
store_from). Each answers why not, or None; the engine's operations and fsck ask the same
questions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from engine.inode import PERSISTED, S_IFDIR, S_IFMT, S_IFREG, Inode


class _Sized(Protocol):
    @property
    def length(self) -> int: ...


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


def staged_problem(
    blocks: Mapping[tuple[int, int], _Sized], version: int, length: int, block_size: int
) -> str | None:
    """Why a file's ``blocks`` of staged ``version`` are not exactly the content ``length``
    bytes cut at ``block_size`` needs (one block per index, each whole but the last); None
    when they are. The commit gate and apply both judge a ContentCommitted by this."""
    if length < 0:
        return f"length {length} is negative"
    count = -(-length // block_size)
    for i in range(count):
        info = blocks.get((version, i))
        want = min(block_size, length - i * block_size)
        if info is None:
            return f"block {i} of staged version {version} is not cached"
        if info.length != want:
            return f"block {i} of staged version {version} holds {info.length} bytes, not {want}"
    extra = sum(1 for v, i in blocks if v == version and not 0 <= i < count)
    if extra:
        return f"{extra} staged block(s) of version {version} lie beyond its {length} bytes"
    return None


def store_from_problem(node: Inode, store_from: str | None) -> str | None:
    """Why a Rename's ``store_from`` cannot be recorded as ``node``'s pending store move (see
    journal/entries.py, Rename); None when it can (or there is none). Only a persisted file has
    content of its own in the store to move; a directory's move covers those below it."""
    if store_from is None:
        return None
    if not store_from:
        return "an empty store path to move from"
    if node.children is None and not node.flags & PERSISTED:
        return f"inode {node.id} is not persisted: it has no content in the store to move"
    return None


def pending_moves(moves: dict[int, tuple[str, str]], node: Inode, old: str) -> None:
    """Records ``node``'s content as still at store path ``old``: a file with its fingerprint;
    a directory, and each persisted file below it at its path under ``old`` — unless one
    already has a move pending: its content is still where that one says. A hard-linked file
    below it is recorded at its own name's path, where its content is (its other names' store
    copies only mirror it); at another name's only if its own name is not below ``node``."""
    stack = [(node, old)]
    others: list[tuple[Inode, str]] = []
    while stack:
        cur, path = stack.pop()
        if cur.children is not None:
            moves.setdefault(cur.id, (path, ""))
            for name, child in cur.children.items():
                if child.children is None and (child.parent, child.name) != (cur.id, name):
                    others.append((child, f"{path}/{name}"))
                else:
                    stack.append((child, f"{path}/{name}"))
        elif cur.flags & PERSISTED:
            _pending_file(moves, cur, path)
    for child, path in others:  # its own name is elsewhere: nothing of it moves but a mirror
        if child.flags & PERSISTED:
            _pending_file(moves, child, path)


def _pending_file(moves: dict[int, tuple[str, str]], node: Inode, path: str) -> None:
    ext = node.ext
    moves.setdefault(node.id, (path, ext.fingerprint or "" if ext is not None else ""))

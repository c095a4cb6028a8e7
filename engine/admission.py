"""What the commit gate checks before an entry may enter the log: exactly what ``State.apply``
needs to apply it, without changing anything.

``admit(state, entry)`` raises ``Refused`` for an entry that apply would reject (or that would
leave the tree unusable: a name no directory may hold); an entry it lets through always applies.
The rules mirror engine/state.py's apply functions one for one, and a property test
(tests/engine/test_admission.py) holds the two to that on random states and entries.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from engine.errors import Refused
from engine.inode import S_IFMT, S_IFREG, Inode
from engine.state import BLOCK_SHIFT_BITS, State, staged_problem
from journal import entries as E


def admit(state: State, entry: Any) -> None:
    """Returns if ``entry`` applies to ``state``; raises ``Refused`` naming why it does not."""
    check = _CHECKS.get(type(entry))
    if check is None:
        raise Refused(f"{type(entry).__name__} is not a journal entry type")
    _check_fields(entry)
    check(state, entry)


# -- field types -------------------------------------------------------------------------------


def _allowed(annotation: Any) -> tuple[type, ...]:
    """The runtime types a field annotated so may hold."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for arg in typing.get_args(annotation) for t in _allowed(arg))
    if annotation is None or annotation is type(None):
        return (type(None),)
    origin = typing.get_origin(annotation)
    return (origin,) if origin is not None else (annotation,)


_FIELD_TYPES: dict[Any, list[tuple[str, tuple[type, ...]]]] = {
    cls: [(name, _allowed(hint)) for name, hint in typing.get_type_hints(cls).items()]
    for cls in E.TYPE_CODES
}


def _check_fields(entry: Any) -> None:
    for (name, allowed), value in zip(_FIELD_TYPES[type(entry)], entry, strict=True):
        # bool is an int, but an int where a bool belongs (or the reverse) is a caller's bug.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise Refused(f"{type(entry).__name__}.{name} is {value!r}, not of its type")


# -- the state ---------------------------------------------------------------------------------


def _node(state: State, ino: int) -> Inode:
    node = state.tree.find(ino) if ino > 0 else None
    if node is None:
        raise Refused(f"inode {ino} does not exist")
    return node


def _dir(state: State, ino: int) -> Inode:
    node = state.tree.find(ino) if ino > 0 else None
    if node is None or node.children is None:
        raise Refused(f"inode {ino} is not a directory")
    return node


def _storable(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Refused(f"{name!r} is not a name a directory can hold")


def _power_of_two(block_size: int) -> None:
    if block_size <= 0 or block_size & (block_size - 1):
        raise Refused(f"block size {block_size} is not a power of two")


def _new(state: State, e: E.MkDir | E.CreateFile | E.Symlink) -> None:
    parent = _dir(state, e.parent)
    _storable(e.name)
    if e.name in parent.children:  # type: ignore[operator]
        raise Refused(f"{e.name!r} already exists in directory {e.parent}")
    table = state.tree.table
    if e.id <= 0 or (e.id < len(table) and table[e.id] is not None):
        raise Refused(f"inode {e.id} already exists or is invalid")


def _complete(state: State, e: E.CompleteFile) -> None:
    node = state.tree.find(e.id) if e.id > 0 else None
    if node is None or node.mode & S_IFMT != S_IFREG:
        raise Refused(f"inode {e.id} is not a regular file")
    _power_of_two(e.block_size)


def _setattr(state: State, e: E.SetAttr) -> None:
    node = _node(state, e.id)
    if e.size is not None and node.mode & S_IFMT != S_IFREG:
        raise Refused(f"inode {e.id} is not a regular file")


def _rename(state: State, e: E.Rename) -> None:
    node = _node(state, e.id)
    src = _dir(state, e.src_parent)
    dst = _dir(state, e.dst_parent)
    _storable(e.dst_name)
    if src.children.get(e.src_name) is not node:  # type: ignore[union-attr]
        raise Refused(f"inode {e.id} is not {e.src_name!r} in directory {e.src_parent}")
    if node.children is not None and state.tree.is_ancestor(node.id, dst):
        raise Refused(f"renaming directory {e.id} below itself")
    existing = dst.children.get(e.dst_name)  # type: ignore[union-attr]
    replaced = existing.id if existing is not None and existing is not node else None
    if replaced != e.replaced:
        raise Refused(f"rename expected to replace {e.replaced}, found {replaced}")
    if replaced is not None and existing.children:  # type: ignore[union-attr]
        raise Refused(f"rename over non-empty directory {replaced}")


def _delete(state: State, e: E.Delete) -> None:
    node = _node(state, e.id)
    parent = _dir(state, e.parent)
    if parent.children.get(e.name) is not node:  # type: ignore[union-attr]
        raise Refused(f"inode {e.id} is not {e.name!r} in directory {e.parent}")


def _add_mount(state: State, e: E.AddMount) -> None:
    _dir(state, e.id)
    if e.id in state.mounts:
        raise Refused(f"directory {e.id} is already a mount point")


def _remove_mount(state: State, e: E.RemoveMount) -> None:
    if e.id not in state.mounts:
        raise Refused(f"inode {e.id} is not a mount point")


def _fingerprint(state: State, e: E.UfsFingerprint) -> None:
    node = _node(state, e.id)
    if e.block_size and not node.flags >> BLOCK_SHIFT_BITS:
        _power_of_two(e.block_size)


def _block_cached(state: State, e: E.BlockCached) -> None:
    node = _node(state, e.file)
    if e.version != node.version and e.version != node.version + 1:  # +1: staged
        raise Refused(f"block of version {e.version}, file {e.file} is at {node.version}")


def _cached_block(state: State, e: E.BlockMoved | E.BlockRemoved) -> None:
    if (e.version, e.idx) not in state.blocks.get(e.file, {}):
        raise Refused(f"block {e.idx} of version {e.version} of file {e.file} is not cached")


def _content_committed(state: State, e: E.ContentCommitted) -> None:
    node = _node(state, e.id)
    if node.mode & S_IFMT != S_IFREG:
        raise Refused(f"inode {e.id} is not a regular file")
    if e.version != node.version + 1:
        raise Refused(f"staged version {e.version}, file {e.id} is at {node.version}")
    _power_of_two(e.block_size)
    problem = staged_problem(state.blocks.get(e.id, {}), e.version, e.length, e.block_size)
    if problem is not None:
        raise Refused(f"inode {e.id}: {problem}")


def _on_file(state: State, e: E.PersistRequested | E.Persisted) -> None:
    _node(state, e.id)


_CHECKS: dict[Any, Callable[[State, Any], None]] = {
    E.MkDir: _new,
    E.CreateFile: _new,
    E.Symlink: _new,
    E.CompleteFile: _complete,
    E.SetAttr: _setattr,
    E.Rename: _rename,
    E.Delete: _delete,
    E.AddMount: _add_mount,
    E.RemoveMount: _remove_mount,
    E.UfsFingerprint: _fingerprint,
    E.BlockCached: _block_cached,
    E.BlockMoved: _cached_block,
    E.BlockRemoved: _cached_block,
    E.PersistRequested: _on_file,
    E.Persisted: _on_file,
    E.ContentCommitted: _content_committed,
}

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
from typing import Any, NoReturn

from engine.errors import Refused
from engine.inode import S_IFMT, S_IFREG, Inode
from engine.nodechecks import staged_problem, stale_problem, store_from_problem, xattr_problem
from engine.orphanrules import orphan_problem
from engine.pathconf import entry_problem
from engine.state import BLOCK_SHIFT_BITS, State
from journal import entries as E


def admit(state: State, entry: Any) -> None:
    """Returns if ``entry`` applies to ``state``; raises ``Refused`` naming why it does not."""
    try:
        allowed_types, check = _RULES[type(entry)]
    except KeyError:
        raise Refused(f"{type(entry).__name__} is not a journal entry type") from None
    # One set lookup per field; the message is worked out only on a refusal.
    for value, allowed in zip(entry, allowed_types):  # noqa: B905 (the same length)
        if type(value) not in allowed:
            _refuse_fields(entry)
    check(state, entry)


# -- field types -------------------------------------------------------------------------------


def _allowed(annotation: Any) -> frozenset[type]:
    """The exact runtime types a field annotated so may hold (exact: a bool where an int
    belongs, or the reverse, is a caller's bug)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return frozenset(t for arg in typing.get_args(annotation) for t in _allowed(arg))
    if annotation is None or annotation is type(None):
        return frozenset((type(None),))
    origin = typing.get_origin(annotation)
    return frozenset((origin if origin is not None else annotation,))


_FIELD_TYPES: dict[Any, tuple[frozenset[type], ...]] = {
    cls: tuple(_allowed(hint) for hint in typing.get_type_hints(cls).values())
    for cls in E.TYPE_CODES
}


def _refuse_fields(entry: Any) -> NoReturn:
    for name, value, allowed in zip(entry._fields, entry, _FIELD_TYPES[type(entry)], strict=True):
        if type(value) not in allowed:
            raise Refused(f"{type(entry).__name__}.{name} is {value!r}, not of its type")
    raise AssertionError("no field is of the wrong type")


# -- the state ---------------------------------------------------------------------------------


def _node(state: State, ino: int, orphans: bool = False) -> Inode:
    node = state.tree.find(ino) if ino > 0 else None
    if node is None and orphans:
        node = state.orphans.get(ino)
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
    # Checked on every create: the tree's table is read directly, as apply reads it.
    table = state.tree.table
    n = len(table)
    pid, name, ino = e.parent, e.name, e.id
    parent = table[pid] if 0 < pid < n else None
    siblings = parent.children if parent is not None else None
    if siblings is None:
        raise Refused(f"inode {pid} is not a directory")
    if name in siblings:
        raise Refused(f"{name!r} already exists in directory {pid}")
    _storable(name)
    if ino <= 0 or (ino < n and (table[ino] is not None or ino in state.orphans)):
        raise Refused(f"inode {ino} already exists or is invalid")


def _complete(state: State, e: E.CompleteFile) -> None:
    node = state.tree.find(e.id) if e.id > 0 else None
    if node is None or node.mode & S_IFMT != S_IFREG:
        raise Refused(f"inode {e.id} is not a regular file")
    _power_of_two(e.block_size)


def _setattr(state: State, e: E.SetAttr) -> None:
    node = _node(state, e.id, orphans=True)
    if (e.size is not None or e.fingerprint is not None) and node.mode & S_IFMT != S_IFREG:
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
    if existing is node and (src is not dst or e.src_name != e.dst_name):
        raise Refused(f"{e.dst_name!r} is another name of inode {e.id} already")
    problem = stale_problem(node, e.stale) or store_from_problem(node, e.store_from)
    if problem is not None:
        raise Refused(problem)
    if e.orphan and (problem := orphan_problem(existing, node)):
        raise Refused(problem)
    if replaced is not None and existing.children:  # type: ignore[union-attr]
        raise Refused(f"rename over non-empty directory {replaced}")


def _link(state: State, e: E.Link) -> None:
    node = _node(state, e.id)
    if node.children is not None:
        raise Refused(f"inode {e.id} is a directory: it cannot have another name")
    parent = _dir(state, e.parent)
    if e.name in parent.children:  # type: ignore[operator]
        raise Refused(f"{e.name!r} already exists in directory {e.parent}")
    _storable(e.name)


def _delete(state: State, e: E.Delete) -> None:
    node = _node(state, e.id)
    parent = _dir(state, e.parent)
    if parent.children.get(e.name) is not node:  # type: ignore[union-attr]
        raise Refused(f"inode {e.id} is not {e.name!r} in directory {e.parent}")
    if e.orphan and (problem := orphan_problem(node)):
        raise Refused(problem)


def _orphan_released(state: State, e: E.OrphanReleased) -> None:
    if e.id not in state.orphans:
        raise Refused(f"inode {e.id} is not an orphan")


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
    node = _node(state, e.file, orphans=True)
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


def _on_file(state: State, e: E.PersistRequested | E.Persisted | E.Accessed) -> None:
    _node(state, e.id)


def _store_copy(state: State, e: E.StoreCopy) -> None:
    problem = stale_problem(_node(state, e.id), e.fingerprint)
    if problem is not None:
        raise Refused(problem)


def _set_xattr(state: State, e: E.SetXattr) -> None:
    problem = xattr_problem(_node(state, e.id), e.name, e.value)
    if problem is not None:
        raise Refused(problem)


def _store_moved(state: State, e: E.StoreMoved) -> None:
    if e.id not in state.store_moves:
        raise Refused(f"inode {e.id} has no pending store move")


def _path_conf(state: State, e: E.PathConfSet) -> None:
    problem = entry_problem(e)
    if problem is not None:
        raise Refused(problem)


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
    E.StoreCopy: _store_copy,
    E.Link: _link,
    E.SetXattr: _set_xattr,
    E.Accessed: _on_file,
    E.StoreMoved: _store_moved,
    E.OrphanReleased: _orphan_released,
    E.PathConfSet: _path_conf,
}

# Entry type -> (the exact types of its fields, its check).
_RULES: dict[Any, tuple[tuple[frozenset[type], ...], Callable[[State, Any], None]]] = {
    cls: (_FIELD_TYPES[cls], check) for cls, check in _CHECKS.items()
}

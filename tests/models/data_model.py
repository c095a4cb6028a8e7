"""The plain model of files' content below one mount, which the engine crash machine
(tests/recovery/test_crash_engine.py) holds the whole engine to.

A model maps a name (a file directly below the mount point) to its acknowledged content and
where that content lives: "ufs" (the store has it: written THROUGH or CACHE_THROUGH, uploaded,
or loaded from the store), "pending" (in the cache, its upload journaled as pending: written
ASYNC_THROUGH) or "cache" (in the cache only: written MUST_CACHE). Each ``m_*`` function returns
the model after an operation, or raises ``Refused`` with the error the engine must raise (and
then change nothing). ``view`` shows a recovered engine the way the model sees it.
"""

from __future__ import annotations

from typing import NamedTuple

from engine import errors as err
from engine.engine import Engine
from engine.inode import PERSISTED
from tests.models.namespace_model import Refused

WRITE_TYPES = ("MUST_CACHE", "CACHE_THROUGH", "THROUGH", "ASYNC_THROUGH")
WHERE = {
    "MUST_CACHE": "cache",
    "CACHE_THROUGH": "ufs",
    "THROUGH": "ufs",
    "ASYNC_THROUGH": "pending",
}


class File(NamedTuple):
    content: bytes
    where: str  # "ufs" | "pending" | "cache"
    # Whether the store may hold a copy of the file (the engine's ``may_be_in_ufs``): its
    # content is there, an upload of it may have landed (pending), or an older version was
    # there once. Deleting or moving such a file needs the store: left behind, the copy would
    # come back at the next listing.
    copy: bool = False
    mode: int = 0o644  # permission bits: in the store too once it has the file


Files = dict[str, File]


def m_write(model: Files, name: str, data: bytes, write_type: str, ufs_down: bool) -> Files:
    where = WHERE[write_type]
    if where == "ufs" and ufs_down:
        raise Refused(err.Unavailable)
    # A rewrite keeps the file: an older version the store holds is still its copy there.
    copy = where != "cache" or (name in model and model[name].copy)
    mode = model[name].mode if name in model else File._field_defaults["mode"]
    return {**model, name: File(data, where, copy, mode)}


def m_delete(model: Files, name: str, ufs_down: bool) -> Files:
    if name not in model:
        raise Refused(err.NotFound)
    if ufs_down and model[name].copy:
        raise Refused(err.Unavailable)
    return {n: f for n, f in model.items() if n != name}


def m_rename(model: Files, src: str, dst: str, ufs_down: bool) -> Files:
    if src not in model:
        raise Refused(err.NotFound)
    if src == dst:
        return model
    # The moved file's own copy is moved (or removed, if stale) in the store first. What the
    # store holds under the new name is removed once the rename is journaled, and the moved
    # file remembers it (a failure to remove it is not the caller's).
    if ufs_down and model[src].copy:
        raise Refused(err.Unavailable)
    out = {n: f for n, f in model.items() if n != src}
    out[dst] = model[src]._replace(copy=model[src].copy or dst in model)
    return out


def m_uploaded(model: Files, name: str) -> Files:
    """The pending upload of ``name``'s current content has reached the store."""
    return {**model, name: model[name]._replace(where="ufs", copy=True)}


def m_changed_in_ufs(model: Files, name: str, data: bytes | None) -> Files:
    """``name`` written (or removed: None) directly in the store, then synced: a file whose
    content Shoal holds and the store does not have yet is left alone."""
    if name in model and model[name].where != "ufs":
        return model
    if data is None:
        return {n: f for n, f in model.items() if n != name}
    if name in model:  # rewritten in place: the store's file keeps its mode
        return {**model, name: model[name]._replace(content=data, where="ufs", copy=True)}
    return {**model, name: File(data, "ufs", True)}


def m_chmod(model: Files, name: str, mode: int, ufs_down: bool) -> Files:
    """chmod: in the store first where it has the file, else journaled for its upload."""
    if name not in model:
        raise Refused(err.NotFound)
    if ufs_down and model[name].where == "ufs":
        raise Refused(err.Unavailable)
    return {**model, name: model[name]._replace(mode=mode)}


def where_of(engine: Engine, name: str) -> str:
    node = engine.ns.lookup(f"/{name}")
    if node.flags & PERSISTED:
        return "ufs"
    return "pending" if engine.state.persists.get(node.id) == node.version else "cache"


def view(engine: Engine) -> Files:
    """Every file below the mount at "/", its bytes read back through the engine (a block
    missing from the cache of a file the store does not have raises DataLost)."""
    out = {}
    for name, node in sorted((engine.ns.tree.root.children or {}).items()):
        data = engine.fs.read(f"/{name}", 0, node.size + 1)
        out[name] = File(data, where_of(engine, name), copy_of(engine, name), node.mode & 0o7777)
    return out


def copy_of(engine: Engine, name: str) -> bool:
    return engine.fs.changes.may_be_in_ufs(engine.ns.lookup(f"/{name}"))

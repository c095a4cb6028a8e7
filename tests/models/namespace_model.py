"""The plain model of the namespace that the state machines hold the engine to.

A model is a dict from absolute path to attributes. Each ``m_*`` function returns the model after
an operation, or raises ``Refused`` with the error the engine must raise (and then change
nothing). ``dump`` shows an engine's state the way the model sees it (no timestamps).
tests/engine/test_tree_statemachine.py and tests/recovery/test_crash_machine.py both compare
against it, so the engine is held to one oracle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from engine import errors as err
from engine.inode import COMPLETE, PERSISTED, PINNED
from engine.names import NAME_MAX
from engine.state import State, block_size_of

# Names from a small alphabet so that operations collide with what exists; one is not UTF-8
# (b"c\xe9", as a local store may hold it), so every crash state meets such a name too.
NAMES = ("a", "b", "c\udce9")


class Attrs(NamedTuple):
    kind: str  # "dir" | "file" | "symlink"
    perm: int
    uid: int
    gid: int
    size: int = 0
    version: int = 0
    complete: bool = False
    block_size: int = 0
    pinned: bool = False
    media: tuple[str, ...] | None = None
    ttl_ms: int | None = None
    ttl_action: str | None = None
    target: str | None = None
    # The engines these models check have no UFS below them: nothing can ever be persisted.
    persisted: bool = False
    # A hard-linked file's paths, all of them (sorted), the same attributes under each; None
    # for a file with one name.
    names: tuple[str, ...] | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()  # extended attributes, sorted by name
    atime: int | None = None  # an access time set explicitly


Model = dict[str, Attrs]  # absolute path -> attributes; "/" is the root
# Per-path defaults (engine/pathconf.py) in the same dict: PATHCONF + prefix -> an Attrs of kind
# "pathconf" whose target is the JSON of its keys. Kept by path string: no tree operation moves
# or removes one, and no path the machines draw starts with it.
PATHCONF = "pathconf:"
ROOT = Attrs("dir", 0o755, 0, 0)


class Refused(Exception):
    """The model says the operation must fail with ``error`` and change nothing."""

    def __init__(self, error: type[err.ShoalError]) -> None:
        super().__init__(error.__name__)
        self.error = error


def outcome(fn: Callable[..., Any], model: dict[str, Any], *args: Any) -> Any:
    """What ``fn`` makes of ``model`` (this module's, or another's: the data model's), or the
    Refused it raises (a state machine's expectation)."""
    try:
        return fn(model, *args)
    except Refused as refused:
        return refused


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def parts_of(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _raw(text: str, error: type[err.ShoalError]) -> bytes:
    """The bytes a name (or symlink target) stands for, UTF-8 or not; refused with ``error``
    unless ``text`` is their one spelling (surrogateescape, as os.fsdecode gives)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise Refused(error) from None
    if raw.decode("utf-8", "surrogateescape") != text:  # escapes of bytes that are UTF-8
        raise Refused(error)
    return raw


def _valid_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Refused(err.InvalidName)
    if len(_raw(name, err.InvalidName)) > NAME_MAX:
        raise Refused(err.NameTooLong)


def resolve(model: Model, parts: list[str]) -> str:
    cur = "/"
    for name in parts:
        if model[cur].kind != "dir":
            raise Refused(err.NotADirectory)
        cur = join(cur, name)
        if cur not in model:
            raise Refused(err.NotFound)
    return cur


def _resolve_dir(model: Model, parts: list[str]) -> str:
    path = resolve(model, parts)
    if model[path].kind != "dir":
        raise Refused(err.NotADirectory)
    return path


def _below(model: Model, path: str) -> list[str]:
    """``path`` and everything under it."""
    prefix = path.rstrip("/") + "/"
    return [p for p in model if p == path or p.startswith(prefix)]


def _has_children(model: Model, path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    return any(p.startswith(prefix) for p in model if p != path)


def _regroup(m: Model, moved: dict[str, str | None]) -> Model:
    """``m`` with hard-linked files' ``names`` following paths that moved (to None: gone)."""
    for path, attrs in list(m.items()):
        if attrs.names is not None:
            kept = (moved.get(p, p) for p in attrs.names)
            names = tuple(sorted(p for p in kept if p is not None))
            m[path] = attrs._replace(names=names if len(names) > 1 else None)
    return m


def _set(m: Model, path: str, attrs: Attrs) -> None:
    """``attrs`` for the file at ``path``, under each of its names."""
    for p in attrs.names or (path,):
        m[p] = attrs


def m_link(model: Model, src: str, dst: str) -> Model:
    """``dst`` becomes another name of ``src``'s file: EEXIST before EPERM (a directory)."""
    source = resolve(model, parts_of(src))
    dparts = parts_of(dst)
    _valid_name(dparts[-1])
    _resolve_dir(model, dparts[:-1])
    if dst in model:
        raise Refused(err.AlreadyExists)
    node = model[source]
    if node.kind == "dir":
        raise Refused(err.NotPermitted)
    m = dict(model)
    _set(m, dst, node._replace(names=tuple(sorted((node.names or (source,)) + (dst,)))))
    return m


def m_mkdir(model: Model, path: str, perm: int, uid: int, parents: bool) -> list[Model]:
    """The model after each directory ``mkdir`` creates (``-p`` creates several, one entry
    each, and a crash may keep any prefix of them, as for ``mkdir -p`` on any file system)."""
    parts = parts_of(path)
    for name in parts:
        _valid_name(name)
    m = dict(model)
    out = []
    cur = "/"
    for i, name in enumerate(parts):
        nxt = join(cur, name)
        last = i == len(parts) - 1
        if nxt in m:
            if m[nxt].kind != "dir":
                raise Refused(err.NotADirectory)
            if last and not parents:
                raise Refused(err.AlreadyExists)
        else:
            if not last and not parents:
                raise Refused(err.NotFound)
            m[nxt] = Attrs("dir", perm, uid, uid)
            out.append(dict(m))
        cur = nxt
    return out


def m_create(model: Model, path: str, perm: int, uid: int) -> Model:
    parts = parts_of(path)
    parent = _resolve_dir(model, parts[:-1])
    _valid_name(parts[-1])
    if path in model:
        raise Refused(err.AlreadyExists)
    m = dict(model)
    m[join(parent, parts[-1])] = Attrs("file", perm, uid, uid)
    return m


def m_symlink(model: Model, path: str, target: str, uid: int) -> Model:
    if not target or "\0" in target:
        raise Refused(err.InvalidArgument)
    size = len(_raw(target, err.InvalidArgument))
    parts = parts_of(path)
    _resolve_dir(model, parts[:-1])
    _valid_name(parts[-1])
    if path in model:
        raise Refused(err.AlreadyExists)
    m = dict(model)
    m[path] = Attrs("symlink", 0o777, uid, uid, size=size, complete=True, target=target)
    return m


def m_complete(model: Model, path: str, length: int, block_size: int) -> Model:
    if length < 0 or block_size <= 0 or block_size & (block_size - 1):
        raise Refused(err.InvalidArgument)
    if model[path].kind != "file":
        raise Refused(err.IsADirectory)
    m = dict(model)
    _set(m, path, m[path]._replace(size=length, complete=True, block_size=block_size))
    return m


def m_setattr(model: Model, path: str, changes: dict[str, Any]) -> Model:
    size = changes.get("size")
    if size is not None and size < 0:
        raise Refused(err.InvalidArgument)
    node = model[resolve(model, parts_of(path))]
    if size is not None and node.kind != "file":
        raise Refused(err.IsADirectory)
    if "mode" in changes:
        node = node._replace(perm=changes["mode"] & 0o7777)
    if "uid" in changes:
        node = node._replace(uid=changes["uid"])
    if "gid" in changes:
        node = node._replace(gid=changes["gid"])
    if changes.get("atime") is not None:
        node = node._replace(atime=changes["atime"])
    if size is not None:
        node = node._replace(size=size, version=node.version + 1)
    if changes.get("pinned") is not None:
        pinned = changes["pinned"]
        media = changes.get("media")
        node = node._replace(pinned=pinned, media=tuple(media) if pinned and media else None)
    ttl = changes.get("ttl_ms")
    if ttl is not None:
        if ttl < 0:
            node = node._replace(ttl_ms=None, ttl_action=None)
        else:
            node = node._replace(ttl_ms=ttl, ttl_action=changes.get("ttl_action") or "free")
    m = dict(model)
    _set(m, path, node)
    return m


def m_setxattr(model: Model, path: str, name: str, value: bytes | None) -> Model:
    """Sets (``value`` None: removes) an extended attribute: user.* ones only, on files and
    directories."""
    key = resolve(model, parts_of(path))
    node = model[key]
    if not name.startswith("user."):
        raise Refused(err.NotSupported)
    if node.kind == "symlink":
        raise Refused(err.NotPermitted)
    xattrs = dict(node.xattrs)
    if value is None:
        if name not in xattrs:
            raise Refused(err.NoAttribute)
        del xattrs[name]
    else:
        xattrs[name] = value
    m = dict(model)
    _set(m, key, node._replace(xattrs=tuple(sorted(xattrs.items()))))
    return m


def m_rename(model: Model, src: str, dst: str, noreplace: bool) -> Model | None:
    """The model after the rename, or None when it is a no-op (source and destination are the
    same file) that writes nothing."""
    sparts, dparts = parts_of(src), parts_of(dst)
    _resolve_dir(model, sparts[:-1])
    if src not in model:
        raise Refused(err.NotFound)
    dparent = _resolve_dir(model, dparts[:-1])
    _valid_name(dparts[-1])
    node = model[src]
    if node.kind == "dir" and (dparent == src or dparent.startswith(src + "/")):
        raise Refused(err.InvalidArgument)
    if src == dst or dst in (node.names or ()):
        return None  # one name onto another of the same file: nothing happens (POSIX)
    existing = model.get(dst)
    if existing is not None:
        if noreplace:
            raise Refused(err.AlreadyExists)
        if existing.kind == "dir":
            if node.kind != "dir":
                raise Refused(err.IsADirectory)
            if _has_children(model, dst):
                raise Refused(err.NotEmpty)
        elif node.kind == "dir":
            raise Refused(err.NotADirectory)
    m = dict(model)
    m.pop(dst, None)
    moved: dict[str, str | None] = {dst: None}
    for p in _below(model, src):
        m[dst + p[len(src) :]] = m.pop(p)
        moved[p] = dst + p[len(src) :]
    return _regroup(m, moved)


def m_delete(model: Model, path: str, recursive: bool) -> Model:
    parts = parts_of(path)
    _resolve_dir(model, parts[:-1])
    if path not in model:
        raise Refused(err.NotFound)
    if _has_children(model, path) and not recursive:
        raise Refused(err.NotEmpty)
    m = dict(model)
    gone: dict[str, str | None] = {}
    for p in _below(model, path):
        del m[p]
        gone[p] = None
    return _regroup(m, gone)


# -- the engine's namespace, as the model sees it ------------------------------------------------


def _conf(conf: dict[str, str]) -> Attrs:
    return Attrs("pathconf", 0, 0, 0, target=json.dumps(conf, sort_keys=True))


def m_pathconf_set(model: Model, prefix: str, values: dict[str, str]) -> Model:
    key = PATHCONF + prefix
    conf = json.loads(model[key].target or "{}") if key in model else {}
    return {**model, key: _conf({**conf, **values})}


def m_pathconf_unset(model: Model, prefix: str, keys: list[str]) -> Model:
    """Unsets ``keys`` at ``prefix``; refused (NotFound) when none of them is set there."""
    key = PATHCONF + prefix
    conf = json.loads(model[key].target or "{}") if key in model else {}
    if not any(k in conf for k in keys):
        raise Refused(err.NotFound)
    left = {k: v for k, v in conf.items() if k not in keys}
    out = {p: a for p, a in model.items() if p != key}
    return {**out, key: _conf(left)} if left else out


def dump(state: State) -> Model:
    """The namespace as model attributes; timestamps are left out (the model has none)."""
    tree = state.tree
    out: Model = {}
    for node in tree.walk():
        ext = node.ext
        paths = [
            tree.path_of(tree.get(pid)).rstrip("/") + "/" + name if node.id != 1 else "/"
            for pid, name in tree.names_of(node)
        ]
        names = tuple(sorted(paths)) if len(paths) > 1 else None
        attrs = Attrs(
            node.kind,
            node.mode & 0o7777,
            node.uid,
            node.gid,
            node.size,
            node.version,
            bool(node.flags & COMPLETE),
            block_size_of(node),
            bool(node.flags & PINNED),
            tuple(ext.media) if ext is not None and ext.media else None,
            ext.ttl_ms if ext is not None else None,
            ext.ttl_action if ext is not None else None,
            ext.target if ext is not None else None,
            bool(node.flags & PERSISTED),
            names,
            tuple(sorted(ext.xattrs.items())) if ext is not None and ext.xattrs else (),
            ext.atime if ext is not None else None,
        )
        for path in paths:
            out[path] = attrs
    for prefix, conf in state.pathconfs.rows():
        out[PATHCONF + prefix] = _conf(conf)
    return out


def check_refused(
    refused: Refused, call: Callable[[], object], op_count: Callable[[], int]
) -> None:
    """``call`` raises the error the model says, and the storage (counted by ``op_count``)
    records no operation for it: a refused operation writes nothing to the journal."""
    before = op_count()
    with pytest.raises(refused.error):
        call()
    assert op_count() == before, "a refused operation wrote to the journal"

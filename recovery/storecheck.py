"""fsck's look at the mounted stores: what writers that died left there (a local UFS's
temporary files of a daemon killed mid-write), and where the content of a renamed file whose
store move is pending is (engine/storemove.py). Only local stores are looked at: fsck runs on
a home with no daemon, and must not need the network or a store's credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.inode import PERSISTED, Inode
from engine.mounts import location
from engine.state import Mount, State
from ufs.base import UnderFS
from ufs.errors import UfsError, UfsNotFound
from ufs.uri import open_ufs


@dataclass
class StoreReport:
    leftovers: list[str] = field(default_factory=list)  # "URI: path" of each
    removed: int = 0
    unreadable: list[str] = field(default_factory=list)  # stores that could not be looked at
    moves: list[str] = field(default_factory=list)  # pending store moves that can complete
    stuck: list[str] = field(default_factory=list)  # those whose content is at neither path


def check_stores(state: State, repair: bool) -> StoreReport:
    """Leftovers in every writable local mount; removed with ``repair`` (only those of writers
    that provably died: ufs/tempfiles.py)."""
    report = StoreReport()
    for mount in sorted(state.mounts.values(), key=lambda m: m.id):
        if mount.readonly or location(mount.uri)[0] != "file":
            continue
        try:
            ufs = open_ufs(mount.uri)
        except UfsError as exc:
            report.unreadable.append(f"{mount.uri}: {exc}")
            continue
        try:
            found = list(ufs.leftovers())
            report.leftovers += [f"{mount.uri}: {path}" for path in found]
            if repair and found:
                report.removed += ufs.clean_leftovers()
            _judge_moves(state, mount, ufs, report)
        finally:
            ufs.close()
    return report


def _store_path(state: State, node: Inode) -> tuple[int, str] | None:
    """(mount id, path in its store) of ``node``; None below no mount."""
    names: list[str] = []
    cur: Inode | None = node
    while cur is not None and len(names) <= len(state.tree.table):
        if cur.id in state.mounts:
            return cur.id, "/".join(reversed(names))
        if cur.parent == cur.id:
            return None
        names.append(cur.name)
        cur = state.tree.find(cur.parent)
    return None


def _fingerprint(ufs: UnderFS, path: str) -> str | None:
    try:
        status = ufs.stat(path)
    except UfsNotFound:
        return None
    return None if status.is_dir else status.fingerprint


def _judge_moves(state: State, mount: Mount, ufs: UnderFS, report: StoreReport) -> None:
    """Each pending move of a file in ``mount``: can it complete (its content at the old path,
    or already at the new one), or is its content at neither?"""
    for ino, (old, _recorded) in sorted(state.store_moves.items()):
        node = state.tree.find(ino)
        where = _store_path(state, node) if node is not None else None
        if node is None or where is None or where[0] != mount.id or node.children is not None:
            continue
        what = f"{mount.uri}: {where[1]} (inode {ino}) from {old}"
        current = node.ext.fingerprint if node.ext is not None else None
        if _fingerprint(ufs, old) is not None or not node.flags & PERSISTED:
            report.moves.append(what)
        elif current is not None and _fingerprint(ufs, where[1]) == current:
            report.moves.append(what + " (moved; to be journaled)")
        else:
            report.stuck.append(what + ": its content is at neither path")

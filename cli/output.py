"""Formatting of inodes and tables for the terminal and for JSON."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Sequence
from typing import Any

from engine.inode import COMPLETE, PERSISTED, PINNED, Inode
from engine.state import block_size_of
from recovery.inspect import inode_attrs

# Names come from the journal and may hold lone surrogates (bytes that are not UTF-8): print
# those bytes escaped (b"caf\xe9" as caf\xe9) rather than fail on the terminal's encoding.
_SAFE = "backslashreplace"


def safe(text: str) -> str:
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that stand for no byte: shown as themselves
        return text.encode("utf-8", _SAFE).decode("utf-8")
    return raw.decode("utf-8", _SAFE)


def mode_string(mode: int) -> str:
    return stat.filemode(mode)


def format_time(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ns / 1e9))


def format_time_full(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{frac:09d}"


def flag_names(node: Inode) -> list[str]:
    names = []
    if node.flags & COMPLETE:
        names.append("complete")
    if node.flags & PERSISTED:
        names.append("persisted")
    if node.flags & PINNED:
        names.append("pinned")
    return names


def inode_json(node: Inode, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": node.id,
        "path": safe(path),
        **inode_attrs(node),
    }
    if node.ext is not None and node.ext.target is not None:
        out["target"] = safe(node.ext.target)
    return out


def inode_stat_json(node: Inode, path: str) -> dict[str, Any]:
    out = inode_json(node, path)
    out.update(
        {
            "ctime_ns": node.ctime,
            "version": node.version,
            "flags": flag_names(node),
            "block_size": block_size_of(node) or None,
            "parent": node.parent,
        }
    )
    if node.children is not None:
        out["entries"] = len(node.children)
    ext = node.ext
    if ext is not None:
        for key in ("media", "ttl_ms", "ttl_action", "fingerprint", "read_type", "write_type"):
            value = getattr(ext, key)
            if value is not None:
                out[key] = value
    return out


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=False)


def ls_rows(nodes: Sequence[tuple[Inode, str]]) -> list[str]:
    """`ls -l` lines: mode, uid, gid, size, mtime, name (-> target), columns aligned."""
    cells = []
    for node, name in nodes:
        label = safe(name)
        if node.ext is not None and node.ext.target is not None:
            label += " -> " + safe(node.ext.target)
        cells.append(
            (
                mode_string(node.mode),
                str(node.uid),
                str(node.gid),
                str(node.size),
                format_time(node.mtime),
                label,
            )
        )
    if not cells:
        return []
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return [
        f"{m:<{widths[0]}} {u:>{widths[1]}} {g:>{widths[2]}} {s:>{widths[3]}} {t} {label}"
        for m, u, g, s, t, label in cells
    ]


def key_values(rows: Sequence[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in rows)

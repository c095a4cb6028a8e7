"""`shoal journal inspect`: a checkpoint expanded into plain, queryable SQLite tables.

Checkpoints keep inodes as msgpack chunks so that they load fast (engine/snapshot.py says why);
this writes the same state as one row per inode, with its full path, for SQL: e.g.
``select path, size from inodes where type = 'file' order by size desc limit 10``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from engine.inode import Inode
from engine.snapshot import load_checkpoint
from engine.state import State
from journal.checkpoint import open_checkpoint
from journal.layout import CheckpointFile, list_journal
from journal.storage import Storage
from recovery.dump import sql_value
from recovery.verify import newest_loadable_checkpoint

BATCH = 10_000


@dataclass(frozen=True)
class InspectReport:
    checkpoint: CheckpointFile
    inodes: int
    out: str


def choose_checkpoint(storage: Storage, root: str, seq: int | None) -> CheckpointFile | None:
    listing = list_journal(storage, root)
    if seq is None:
        return newest_loadable_checkpoint(storage, listing)
    return next((c for c in listing.checkpoints if c.seq == seq), None)


def inode_attrs(node: Inode) -> dict[str, Any]:
    """An inode's attributes under the names every export of it uses (these tables, and the
    command line's JSON), in their order."""
    return {
        "type": node.kind,
        "mode": node.mode,
        "uid": node.uid,
        "gid": node.gid,
        "size": node.size,
        "mtime_ns": node.mtime,
    }


def _inode_row(state: State, node: Inode) -> dict[str, Any]:
    ext = node.ext
    return {
        "id": node.id,
        "parent": node.parent,
        "name": sql_value(node.name),  # a name that is not UTF-8: a BLOB of its bytes
        "path": sql_value(state.tree.path_of(node)),
        **inode_attrs(node),
        "ctime_ns": node.ctime,
        "version": node.version,
        "flags": node.flags,
        "symlink_target": sql_value(ext.target) if ext else None,
        "pinned_media": json.dumps(ext.media) if ext and ext.media else None,
        "ttl_ms": ext.ttl_ms if ext else None,
        "ttl_action": ext.ttl_action if ext else None,
        "ufs_fingerprint": ext.fingerprint if ext else None,
    }


def export_checkpoint(storage: Storage, ckpt: CheckpointFile, out: str) -> InspectReport:
    """Writes ``out`` (replacing it) with tables inodes, mounts, blocks, persists and meta."""
    import sqlite_utils

    conn = open_checkpoint(storage, ckpt)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        state = load_checkpoint(conn, ckpt.seq)
    finally:
        conn.close()
    if os.path.exists(out):
        os.unlink(out)
    db = sqlite_utils.Database(out)
    inodes = db["inodes"]
    rows = (_inode_row(state, node) for node in state.tree.walk())
    inodes.insert_all(rows, pk="id", batch_size=BATCH)  # type: ignore[union-attr]
    inodes.create_index(["parent", "name"], unique=True)  # type: ignore[union-attr]
    db["mounts"].insert_all(  # type: ignore[union-attr]
        (
            {"id": m.id, "path": state.tree.path_of(state.tree.get(m.id)), "uri": m.uri,
             "options": json.dumps(m.options), "readonly": m.readonly,
             "credential": m.credential, "time_ns": m.time}
            for m in state.mounts.values()
        ),
        pk="id",
    )  # fmt: skip
    db["blocks"].insert_all(  # type: ignore[union-attr]
        (
            {"file": f, "version": v, "idx": i, "tier": b.tier, "length": b.length,
             "checksum": b.checksum}
            for f, blocks in state.blocks.items()
            for (v, i), b in blocks.items()
        ),
        pk=("file", "version", "idx"),
    )  # fmt: skip
    db["persists"].insert_all(  # type: ignore[union-attr]
        ({"file": f, "version": v} for f, v in state.persists.items()), pk="file"
    )
    db["meta"].insert_all(  # type: ignore[union-attr]
        ({"key": k, "value": v} for k, v in sorted(meta.items())), pk="key"
    )
    db.conn.close()
    return InspectReport(ckpt, state.tree.count, out)

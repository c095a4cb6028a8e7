"""Checkpoints: a full snapshot of state as an SQLite database file.

The database is built in memory with apsw, serialized, and written through the storage interface
(temporary name, fsync, rename, fsync of the directory), so the crash simulator sees every step.
The CRC-32 of the whole file is part of its name: a checkpoint verifies when its bytes hash to
the name and its ``meta`` table holds this format's version and the sequence number in the name.
Any SQLite tool (``sqlite-utils``, ``sqlite3``) can open one; engine/snapshot.py documents the
tables the state writes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import apsw

from journal.layout import CHECKPOINT_DIR, CheckpointFile, checkpoint_name
from journal.storage import Storage, join, write_durably

CHECKPOINT_FORMAT = 1

META_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,  -- format_version | seq | created_ns | shoal_version
    value
);
"""


class CheckpointInvalid(Exception):
    pass


def _memory_db() -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    conn.execute("PRAGMA page_size=65536; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;")
    return conn


def write_checkpoint(
    storage: Storage,
    root: str,
    seq: int,
    fill: Callable[[apsw.Connection], None],
    extra_meta: dict[str, object] | None = None,
) -> CheckpointFile:
    """Writes the state ``fill`` puts into a fresh database as the checkpoint at ``seq``."""
    conn = _memory_db()
    with conn:
        conn.execute(META_SCHEMA)
        meta = {"format_version": CHECKPOINT_FORMAT, "seq": seq, **(extra_meta or {})}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        fill(conn)
    data = conn.serialize("main")
    conn.close()
    crc = zlib.crc32(data)
    cdir = join(root, CHECKPOINT_DIR)
    storage.makedirs(cdir)
    path = join(cdir, checkpoint_name(seq, crc))
    write_durably(storage, path, data)
    return CheckpointFile(seq, crc, path)


def open_checkpoint(storage: Storage, ckpt: CheckpointFile) -> apsw.Connection:
    """The checkpoint's database, in memory, after checking its bytes and meta table."""
    data = storage.read(ckpt.path)
    actual = zlib.crc32(data)
    if actual != ckpt.crc:
        raise CheckpointInvalid(
            f"{ckpt.path}: checksum {actual:08x} does not match the {ckpt.crc:08x} in its name"
        )
    conn = apsw.Connection(":memory:")
    try:
        conn.deserialize("main", data)
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    except apsw.Error as exc:
        conn.close()
        raise CheckpointInvalid(f"{ckpt.path}: not a readable checkpoint database: {exc}") from exc
    if meta.get("format_version") != CHECKPOINT_FORMAT:
        conn.close()
        raise CheckpointInvalid(
            f"{ckpt.path}: checkpoint format {meta.get('format_version')!r}, this shoal reads"
            f" {CHECKPOINT_FORMAT}"
        )
    if meta.get("seq") != ckpt.seq:
        conn.close()
        raise CheckpointInvalid(f"{ckpt.path}: meta says seq {meta.get('seq')!r}")
    return conn

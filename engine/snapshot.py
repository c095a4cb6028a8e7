"""State <-> checkpoint tables, and the state digest. The schema's comments are the reference.

Inodes are stored in chunks: one row holds the msgpack array of up to INODE_CHUNK consecutive
inode rows. A checkpoint of a million inodes must be written in under two seconds and loaded in
under three, and per-row SQLite work (binding, stepping, building a tuple per row) costs more
than that in Python; unpacking one array per chunk is done in C. `shoal journal inspect`
expands the chunks into a plain `inodes` table for SQL queries.

The digest is a BLAKE2b-128 over the canonical rows, table by table in key order, so two states
have the same digest exactly when their checkpoints hold the same rows.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterator
from itertools import islice

import apsw
import msgpack

from engine.inode import Inode, InodeExt, InodeTree, shared_values
from engine.state import BlockInfo, Mount, State

SCHEMA = """
CREATE TABLE inode_chunks (
    first_id INTEGER PRIMARY KEY,  -- id of the chunk's first inode
    count    INTEGER NOT NULL,     -- inode rows in the chunk
    rows     BLOB NOT NULL         -- msgpack array of inode rows, in id order; a row is the array
                                   -- [id, parent, name, mode, uid, gid, size, mtime, ctime,
                                   --  version, flags, ext] (see INODE_COLUMNS)
);
CREATE TABLE mounts (
    id         INTEGER PRIMARY KEY,  -- the mount point directory's inode
    uri        TEXT NOT NULL,
    options    TEXT NOT NULL,        -- JSON object of non-secret options
    readonly   INTEGER NOT NULL,
    credential TEXT,                 -- name of the entry in <home>/credentials, or NULL
    time       INTEGER NOT NULL
);
CREATE TABLE blocks (
    file     INTEGER NOT NULL,
    version  INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    tier     TEXT NOT NULL,          -- tier name the block lives in
    length   INTEGER NOT NULL,
    checksum INTEGER NOT NULL,       -- CRC-32 of the block's bytes
    PRIMARY KEY (file, version, idx)
) WITHOUT ROWID;
CREATE TABLE persists (
    file    INTEGER PRIMARY KEY,     -- a file whose content version awaits upload to its UFS
    version INTEGER NOT NULL
);
"""

INODE_CHUNK = 8192
# The columns of an inode row (in a chunk, in `shoal journal inspect`'s table and in the digest):
INODE_COLUMNS = """
    id      INTEGER PRIMARY KEY,  -- never reused; 1 is the root (its own parent, name '')
    parent  INTEGER NOT NULL,     -- id of the containing directory
    name    TEXT NOT NULL,        -- 1-255 bytes of UTF-8, no '/' or NUL
    mode    INTEGER NOT NULL,     -- st_mode: file type bits | permission bits
    uid     INTEGER NOT NULL,
    gid     INTEGER NOT NULL,
    size    INTEGER NOT NULL,     -- bytes (files, symlinks); 0 for directories
    mtime   INTEGER NOT NULL,     -- ns since the epoch
    ctime   INTEGER NOT NULL,     -- ns since the epoch
    version INTEGER NOT NULL,     -- content version; block ids are (id, version, index)
    flags   INTEGER NOT NULL,     -- bit0 complete, bit1 persisted, bit2 pinned,
                                  -- bits 8-15 log2(block size)
    ext                           -- NULL, or [symlink target, pinned media, ttl_ms, ttl_action,
                                  --           UFS fingerprint, block size, read type,
                                  --           write type] (older checkpoints: shorter)
"""


def _inode_rows(tree: InodeTree) -> Iterator[tuple[object, ...]]:
    for n in tree.table:
        if n is not None:
            ext = n.ext
            yield (
                n.id, n.parent, n.name, n.mode, n.uid, n.gid, n.size, n.mtime, n.ctime,
                n.version, n.flags, None if ext is None else ext.as_row(),
            )  # fmt: skip


def _mount_rows(state: State) -> Iterator[tuple[object, ...]]:
    for ino in sorted(state.mounts):
        m = state.mounts[ino]
        options = json.dumps(m.options, sort_keys=True)
        yield (m.id, m.uri, options, int(m.readonly), m.credential, m.time)


def _block_rows(state: State) -> Iterator[tuple[object, ...]]:
    for file in sorted(state.blocks):
        blocks = state.blocks[file]
        for version, index in sorted(blocks):
            b = blocks[(version, index)]
            yield (file, version, index, b.tier, b.length, b.checksum)


def _persist_rows(state: State) -> Iterator[tuple[object, ...]]:
    for file in sorted(state.persists):
        yield (file, state.persists[file])


def _inode_chunks(tree: InodeTree) -> Iterator[tuple[int, int, bytes]]:
    pack = msgpack.Packer(use_bin_type=True).pack
    rows = _inode_rows(tree)
    while True:
        chunk = list(islice(rows, INODE_CHUNK))
        if not chunk:
            return
        yield chunk[0][0], len(chunk), pack(chunk)  # type: ignore[misc]


def fill_checkpoint(state: State, conn: apsw.Connection) -> None:
    enabled = gc.isenabled()
    gc.disable()  # a million short-lived row tuples would trigger useless collections
    try:
        _fill(state, conn)
    finally:
        if enabled:
            gc.enable()


def _fill(state: State, conn: apsw.Connection) -> None:
    conn.execute(SCHEMA)
    conn.executemany("INSERT INTO inode_chunks VALUES (?,?,?)", _inode_chunks(state.tree))
    conn.executemany("INSERT INTO mounts VALUES (?,?,?,?,?,?)", _mount_rows(state))
    conn.executemany("INSERT INTO blocks VALUES (?,?,?,?,?,?)", _block_rows(state))
    conn.executemany("INSERT INTO persists VALUES (?,?)", _persist_rows(state))
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("next_inode_id", state.tree.next_id), ("inode_count", state.tree.count)],
    )


def load_checkpoint(conn: apsw.Connection, seq: int) -> State:
    """The state a checkpoint database holds (as opened by journal.checkpoint.open_checkpoint)."""
    state = State()
    tree = state.tree
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    # Journal.open runs this with the cyclic GC off (journal.journal._build_in_bulk).
    table: list[Inode | None] = [None] * int(meta["next_inode_id"])
    orphans: list[Inode] = []
    unpack = msgpack.unpackb
    share = shared_values.setdefault
    new = Inode.__new__
    for (blob,) in conn.execute("SELECT rows FROM inode_chunks ORDER BY first_id"):
        for row in unpack(blob, use_list=False):
            ino, parent, name, mode, uid, gid, size, mtime, ctime, version, flags, ext = row
            # Attributes set one by one rather than through Inode(...): a third cheaper.
            node = new(Inode)
            node.id = ino
            node.name = name
            node.mode = share(mode, mode)
            node.uid = share(uid, uid)
            node.gid = share(gid, gid)
            node.size = size
            node.mtime = mtime
            node.ctime = mtime if ctime == mtime else ctime
            node.version = version
            node.flags = share(flags, flags)
            node.children = {} if mode & 0o170000 == 0o040000 else None
            node.ext = None if ext is None else InodeExt.from_row(list(ext))
            table[ino] = node
            p = table[parent]
            if p is None:
                node.parent = parent
                orphans.append(node)  # parent has a higher id (moved under a newer dir)
            else:
                node.parent = p.id
                if ino != 1:
                    p.children[name] = node
    for node in orphans:
        p = table[node.parent]
        node.parent = p.id  # type: ignore[union-attr]
        p.children[node.name] = node  # type: ignore[union-attr,index]
    tree.table = table
    tree.count = int(meta["inode_count"])
    tree.next_id = int(meta["next_inode_id"])
    for ino, uri, options, readonly, credential, time in conn.execute("SELECT * FROM mounts"):
        state.mounts[ino] = Mount(ino, uri, json.loads(options), bool(readonly), credential, time)
    for file, version, index, tier, length, checksum in conn.execute("SELECT * FROM blocks"):
        state.blocks.setdefault(file, {})[(version, index)] = BlockInfo(tier, length, checksum)
    for file, version in conn.execute("SELECT * FROM persists"):
        state.persists[file] = version
    state.last_seq = seq
    return state


def digest(state: State) -> str:
    h = hashlib.blake2b(digest_size=16)
    pack = msgpack.Packer(use_bin_type=True).pack
    for name, rows in (
        ("inodes", _inode_rows(state.tree)),
        ("mounts", _mount_rows(state)),
        ("blocks", _block_rows(state)),
        ("persists", _persist_rows(state)),
    ):
        h.update(name.encode())
        for row in rows:
            h.update(pack(row))
    h.update(pack(state.tree.next_id))
    return h.hexdigest()

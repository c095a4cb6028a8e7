"""State <-> checkpoint tables, and the state digest. The schema's comments are the reference.

Inodes are stored in chunks: one row holds the msgpack array of up to INODE_CHUNK consecutive
inode rows. A checkpoint of a million inodes must be written in under two seconds and loaded in
under three, and per-row SQLite work (binding, stepping, building a tuple per row) costs more
than that in Python; unpacking one array per chunk is done in C. Since chunk format 2, a chunk
also carries a palette of the (mode, uid, gid, flags) sets its rows use, and a row names its set
by index: a dataset's files share a handful of them, so each set's values are built and shared
once per chunk rather than per inode (measured on a million inodes: load 40% faster, checkpoint
31% smaller). `shoal journal inspect` expands the chunks into a plain `inodes` table for SQL.

The digest is a BLAKE2b-128 over the canonical rows, table by table in key order, so two states
have the same digest exactly when their checkpoints hold the same rows.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import apsw
import msgpack

from engine.inode import ROOT_ID, Inode, InodeExt, InodeTree, shared_values
from engine.state import BlockInfo, Mount, State
from journal import fsnames

SCHEMA = """
CREATE TABLE inode_chunks (
    first_id INTEGER PRIMARY KEY,  -- id of the chunk's first inode
    count    INTEGER NOT NULL,     -- inode rows in the chunk
    rows     BLOB NOT NULL         -- msgpack array [palette, rows] (meta inode_chunk_format 2):
                                   -- palette: the [mode, uid, gid, flags] sets of the chunk;
                                   -- rows, in id order: [id, parent, name, palette index, size,
                                   --  mtime, ctime or nil when equal to mtime, version, ext].
                                   -- Format 1 (no meta key): an array of rows [id, parent, name,
                                   --  mode, uid, gid, size, mtime, ctime, version, flags, ext].
                                   -- Columns: see INODE_COLUMNS
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
CREATE TABLE store_moves (           -- absent from checkpoints written before it: none pending
    id          INTEGER PRIMARY KEY, -- a renamed file or directory whose store move is pending
    path        TEXT NOT NULL,       -- the store path its content is still to be moved from
    fingerprint TEXT NOT NULL        -- the file's fingerprint at the rename; '' for a directory
);
CREATE TABLE orphans (               -- files unlinked while open (absent from older checkpoints)
    id  INTEGER PRIMARY KEY,
    row BLOB NOT NULL                -- msgpack of its inode row, as INODE_COLUMNS (parent and
                                     -- name: the last name it had)
);
CREATE TABLE path_confs (            -- per-path defaults (absent from older checkpoints: none)
    prefix BLOB PRIMARY KEY,         -- the absolute path's bytes (engine/pathconf.py)
    conf   TEXT NOT NULL             -- JSON object key -> canonical value
);
"""

INODE_CHUNK = 8192
INODE_CHUNK_FORMAT = 2  # meta "inode_chunk_format"; checkpoints without it are format 1
# The columns of an inode row (in a chunk, in `shoal journal inspect`'s table and in the digest):
INODE_COLUMNS = """
    id      INTEGER PRIMARY KEY,  -- never reused; 1 is the root (its own parent, name '')
    parent  INTEGER NOT NULL,     -- id of the containing directory
    name    TEXT NOT NULL,        -- 1-255 bytes, no '/' or NUL; in a chunk, a name that is
                                  -- not UTF-8 is msgpack ext type 1 of its bytes (fsnames.py)
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
                                  --           write type, hard links: [[parent, name], ...]
                                  --           besides (parent, name), a device's rdev,
                                  --           extended attributes (a map name -> bytes, or
                                  --           nil), atime (ns, or nil: equal to mtime)]
                                  --           (older checkpoints: shorter)
"""


def _inode_rows(tree: InodeTree | Iterable[Inode]) -> Iterator[tuple[object, ...]]:
    for n in tree.table if isinstance(tree, InodeTree) else tree:
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


def _store_move_rows(state: State) -> Iterator[tuple[object, ...]]:
    for ino in sorted(state.store_moves):
        yield (ino, *state.store_moves[ino])


def _path_conf_rows(state: State) -> Iterator[tuple[object, ...]]:
    for prefix, conf in state.pathconfs.rows():
        yield (prefix.encode("utf-8", "surrogateescape"), json.dumps(conf, sort_keys=True))


def _inode_chunks(tree: InodeTree) -> Iterator[tuple[int, int, bytes]]:
    pack = fsnames.packer()
    nodes = (n for n in tree.table if n is not None)
    while True:
        chunk = list(islice(nodes, INODE_CHUNK))
        if not chunk:
            return
        # The rows straight from the inodes, not _inode_rows through _chunk_from_v1 (the same
        # result): measured on a million inodes, 1.25 s instead of 1.55 s of a 2 s budget.
        palette: dict[tuple[int, int, int, int], int] = {}
        index = palette.setdefault
        rows = []
        for n in chunk:
            ext = n.ext
            rows.append(
                (
                    n.id, n.parent, n.name, index((n.mode, n.uid, n.gid, n.flags), len(palette)),
                    n.size, n.mtime, None if n.ctime == n.mtime else n.ctime, n.version,
                    None if ext is None else ext.as_row(),
                )
            )  # fmt: skip
        yield chunk[0].id, len(chunk), pack((list(palette), rows))


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
    conn.executemany("INSERT INTO store_moves VALUES (?,?,?)", _store_move_rows(state))
    conn.executemany("INSERT INTO path_confs VALUES (?,?)", _path_conf_rows(state))
    pack = fsnames.packer()
    orphans = _inode_rows(state.orphans[i] for i in sorted(state.orphans))
    conn.executemany("INSERT INTO orphans VALUES (?,?)", ((r[0], pack(r)) for r in orphans))
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ("next_inode_id", state.tree.next_id),
            ("inode_count", state.tree.count),
            ("inode_chunk_format", INODE_CHUNK_FORMAT),
        ],
    )


def load_checkpoint(conn: apsw.Connection, seq: int) -> State:
    """The state a checkpoint database holds (as opened by journal.checkpoint.open_checkpoint)."""
    state = State()
    tree = state.tree
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    # Journal.open runs this with the cyclic GC off (journal.journal._build_in_bulk).
    table: list[Inode | None] = [None] * int(meta["next_inode_id"])
    orphans: list[Inode] = []
    linked: list[Inode] = []
    unpack = functools.partial(msgpack.unpackb, ext_hook=fsnames.ext_hook)
    blobs = (blob for (blob,) in conn.execute("SELECT rows FROM inode_chunks ORDER BY first_id"))
    if meta.get("inode_chunk_format", 1) == 1:
        chunks: Iterable[Chunk] = (_chunk_from_v1(unpack(b, use_list=False)) for b in blobs)
    else:
        chunks = (unpack(b, use_list=False) for b in blobs)
    _load_rows(chunks, table, orphans, linked, tree.subdirs)
    for node in orphans:
        p = table[node.parent]
        node.parent = p.id  # type: ignore[union-attr]
        p.children[node.name] = node  # type: ignore[union-attr,index]
    for node in linked:  # a hard-linked file's other names, once every directory exists
        for pid, name in node.ext.links:  # type: ignore[union-attr]
            table[pid].children[name] = node
    tree.table = table
    tree.count = int(meta["inode_count"])
    tree.next_id = int(meta["next_inode_id"])
    for ino, uri, options, readonly, credential, time in conn.execute("SELECT * FROM mounts"):
        state.mounts[ino] = Mount(ino, uri, json.loads(options), bool(readonly), credential, time)
    for file, version, index, tier, length, checksum in conn.execute("SELECT * FROM blocks"):
        state.blocks.setdefault(file, {})[(version, index)] = BlockInfo(tier, length, checksum)
    for file, version in conn.execute("SELECT * FROM persists"):
        state.persists[file] = version
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    if "store_moves" in tables:
        for ino, path, fingerprint in conn.execute("SELECT * FROM store_moves"):
            state.store_moves[ino] = (path, fingerprint)
    if "path_confs" in tables:
        rows = conn.execute("SELECT prefix, conf FROM path_confs")
        state.pathconfs.load({p.decode("utf-8", "surrogateescape"): json.loads(c) for p, c in rows})
    _load_orphans(conn, state)
    state.last_seq = seq
    return state


def _load_orphans(conn: apsw.Connection, state: State) -> None:
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'orphans'").fetchall()
    for ino, blob in conn.execute("SELECT id, row FROM orphans ORDER BY id") if has else ():
        i, parent, name, mode, uid, gid, size, mtime, ctime, version, flags, ext = msgpack.unpackb(
            blob, ext_hook=fsnames.ext_hook
        )
        row_ext = None if ext is None else InodeExt.from_row(list(ext))
        state.orphans[ino] = Inode(
            i, parent, name, mode, uid, gid, size, mtime, ctime, version, flags, None, row_ext
        )


Chunk = tuple[Sequence[Sequence[int]], Sequence[Sequence[Any]]]  # (palette, rows), format 2


def _load_rows(
    chunks: Iterable[Chunk],
    table: list[Inode | None],
    orphans: list[Inode],
    linked: list[Inode],
    subdirs: dict[int, int],
) -> None:
    """Builds the inodes of format-2 chunks into ``table``; those whose parent comes later
    (moved under a newer directory) go to ``orphans``, to be linked once all exist, and
    hard-linked files to ``linked``, whose other names are added then. Directories are
    counted into ``subdirs`` (st_nlink's, derived from the tree, so not stored)."""
    share = shared_values.setdefault
    new = Inode.__new__
    for sets, rows in chunks:
        # Each set's values shared once per chunk, and whether it is a directory's.
        palette = [
            (share(m, m), share(u, u), share(g, g), share(f, f), m & 0o170000 == 0o040000)
            for m, u, g, f in sets
        ]
        for ino, parent, name, attrs, size, mtime, ctime, version, ext in rows:
            # Attributes set one by one rather than through Inode(...): a third cheaper.
            node = new(Inode)
            node.id = ino
            node.name = name
            node.mode, node.uid, node.gid, node.flags, is_dir = palette[attrs]
            node.size = size
            node.mtime = mtime
            node.ctime = mtime if ctime is None else ctime
            node.version = version
            if is_dir:
                node.children = {}
                if ino != ROOT_ID:
                    subdirs[parent] = subdirs.get(parent, 0) + 1
            else:
                node.children = None
            if ext is None:
                node.ext = None
            else:
                node.ext = InodeExt.from_row(list(ext))
                if node.ext.links:
                    linked.append(node)
            table[ino] = node
            p = table[parent]
            if p is None:
                node.parent = parent
                orphans.append(node)
            else:
                node.parent = p.id
                if ino != 1:
                    p.children[name] = node  # type: ignore[index]


def _chunk_from_v1(rows: Sequence[Sequence[Any]]) -> Chunk:
    """A format-1 chunk (rows of 12 columns, written before the palette) in format 2."""
    palette: dict[tuple[int, int, int, int], int] = {}
    index = palette.setdefault
    out = [
        (ino, parent, name, index((mode, uid, gid, flags), len(palette)), size, mtime,
         None if ctime == mtime else ctime, version, ext)
        for ino, parent, name, mode, uid, gid, size, mtime, ctime, version, flags, ext in rows
    ]  # fmt: skip
    return list(palette), out


def digest(state: State) -> str:
    h = hashlib.blake2b(digest_size=16)
    pack = fsnames.packer()
    for name, rows in (
        ("inodes", _inode_rows(state.tree)),
        ("mounts", _mount_rows(state)),
        ("blocks", _block_rows(state)),
        ("persists", _persist_rows(state)),
        # Only when there are some: the digests of states without any stay as they were.
        *([("store_moves", _store_move_rows(state))] if state.store_moves else []),
        # Only when there are some: the digest of a state without orphans stays as it was.
        *(
            [("orphans", _inode_rows(state.orphans[i] for i in sorted(state.orphans)))]
            if state.orphans
            else []
        ),
        # Only when there are some: the digest of a state without path confs stays as it was.
        *([("path_confs", _path_conf_rows(state))] if state.pathconfs.table else []),
    ):
        h.update(name.encode())
        for row in rows:
            h.update(pack(row))
    h.update(pack(state.tree.next_id))
    return h.hexdigest()

"""The commit gate admits exactly the entries the state can apply, and appends nothing else."""

from __future__ import annotations

import copy
import time
from stat import S_IFCHR, S_IFIFO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.admission import admit
from engine.engine import Engine
from engine.errors import Refused
from engine.inode import S_IFDIR, S_IFMT, S_IFREG
from engine.state import ApplyError, State
from journal import entries as E
from tests.invariants import OpenEngine


def test_a_persisted_for_a_deleted_file_is_refused_with_nothing_appended(
    open_engine: OpenEngine,
) -> None:
    engine = open_engine()
    node = engine.ns.create("/f")
    engine.ns.delete("/f")
    last = engine.journal.last_seq
    with engine.gate.lock, pytest.raises(Refused, match=f"inode {node.id} does not exist"):
        engine.gate.commit(E.Persisted(node.id, node.version, "etag", time.time_ns()))
    assert engine.journal.last_seq == last
    engine.close()
    open_engine().close()  # the home opens: the log holds nothing replay cannot apply


def test_an_entry_of_the_wrong_field_type_is_refused(engine: Engine) -> None:
    with engine.gate.lock:
        last = engine.journal.last_seq
        with pytest.raises(Refused, match="MkDir.name"):
            engine.gate.commit(E.MkDir(engine.ns.tree.next_id, 1, 7, 0o755, 0, 0, 1))  # type: ignore[arg-type]
        with pytest.raises(Refused, match="not a name"):
            engine.gate.commit(E.MkDir(engine.ns.tree.next_id, 1, "a/b", 0o755, 0, 0, 1))
        assert engine.journal.last_seq == last


# -- admit() agrees with apply on random states and entries ------------------------------------

# Few ids and names, so that entries often meet the inodes and names earlier ones made.
ids = st.integers(min_value=0, max_value=5)
names = st.sampled_from(["a", "b"])
times = st.integers(min_value=0, max_value=10)
small = st.integers(min_value=0, max_value=3)
versions = st.integers(min_value=0, max_value=2)
block_sizes = st.sampled_from([0, 3, 4096, 1 << 20])
stale_copies = st.none() | st.sampled_from(["f1", E.STALE_COPY, ""])  # "": refused
store_froms = st.none() | st.sampled_from(["a", "d/b", ""])  # "": refused

entries = st.one_of(
    st.builds(E.MkDir, ids, ids, names, st.just(0o755), small, small, times),
    st.builds(
        E.CreateFile,
        ids,
        ids,
        names,
        st.sampled_from([0o644, S_IFREG | 0o600, S_IFIFO | 0o644, S_IFCHR | 0o600, S_IFDIR | 0o7]),
        small,
        small,
        times,
        st.sampled_from([0, 259]),
    ),  # fmt: skip
    st.builds(E.Link, ids, ids, names, times),
    st.builds(E.Symlink, ids, ids, names, st.just("t"), small, small, times),
    st.builds(E.CompleteFile, ids, small, block_sizes, times),
    st.builds(
        E.SetAttr,
        ids,
        times,
        mode=st.none() | st.just(0o600),
        uid=st.none() | small,
        size=st.none() | small,
        pinned=st.none() | st.booleans(),
        ttl_ms=st.none() | st.sampled_from([-1, 5]),
        fingerprint=st.none() | st.sampled_from(["f1", "f3"]),
        atime=st.none() | times,
    ),  # fmt: skip
    st.builds(
        E.Rename,
        ids,
        ids,
        names,
        ids,
        names,
        times,
        st.none() | ids,
        stale_copies,
        store_froms,
        st.booleans(),
    ),
    st.builds(E.StoreMoved, ids, times),
    st.builds(E.Delete, ids, ids, names, times, st.booleans()),
    st.builds(E.OrphanReleased, ids, times),
    st.builds(E.AddMount, ids, st.just("file:///x"), st.just({}), st.booleans(), st.none(), times),
    st.builds(E.RemoveMount, ids, times),
    st.builds(
        E.UfsFingerprint,
        ids,
        st.sampled_from(["f1", "f2"]),
        small,
        times,
        times,
        block_sizes,
        st.booleans(),
        st.booleans(),
    ),  # fmt: skip
    st.builds(E.BlockCached, ids, versions, small, st.just("SSD"), small, small, times),
    st.builds(E.BlockMoved, ids, versions, small, st.just("HDD"), times),
    st.builds(E.BlockRemoved, ids, versions, small, times),
    st.builds(E.PersistRequested, ids, versions, times),
    st.builds(E.Persisted, ids, versions, st.sampled_from(["etag", ""]), times),
    st.builds(E.ContentCommitted, ids, versions, small, block_sizes, st.booleans(), times),
    st.builds(E.StoreCopy, ids, stale_copies.filter(lambda s: s is not None), times),
    st.builds(
        E.SetXattr,
        ids,
        st.sampled_from(
            ["user.a", "user.b", "user.", "security.x", "user." + "n" * 251, "user.\udcff"]
        ),
        st.none() | st.sampled_from([b"", b"v", bytes(65536), bytes(65537)]),
        times,
    ),  # fmt: skip
    st.builds(E.Accessed, ids, times),
    st.builds(
        E.PathConfSet,
        st.sampled_from(["/", "/a", "/a/b", "a", "/a/", "/a/../b", "//a", "/\udcff", "/\ud800"]),
        st.dictionaries(
            st.sampled_from(["read_type", "write_type", "sync_interval", "ttl", "ttl_action", "x"]),
            st.none()
            | st.sampled_from(
                ["CACHE", "ASYNC_THROUGH", "cache", "-1", "0", "2.5", "-2", "nan", "7", "free", ""]
            ),
            max_size=3,
        ),
        times,
    ),  # fmt: skip
)


def aimed(state: State, entry: object, data: st.DataObject) -> object:
    """``entry`` made likelier to fit: it names an inode that exists where it is, and a rename
    names what its destination holds now. Blind draws almost never meet such states."""
    live = [n for n in state.tree.table[2:] if n is not None]
    dirs = [n.id for n in state.tree.table if n is not None and n.children is not None]
    if isinstance(entry, E.MkDir | E.CreateFile | E.Symlink):
        return entry._replace(id=state.tree.next_id, parent=data.draw(st.sampled_from(dirs)))
    if isinstance(entry, E.Link) and live:
        node = data.draw(st.sampled_from(live))
        return entry._replace(id=node.id, parent=data.draw(st.sampled_from(dirs)))
    if isinstance(entry, E.Rename | E.Delete) and live:
        node = data.draw(st.sampled_from(live))
        # Any of its names: a hard-linked file's other names change only themselves.
        parent, name = data.draw(st.sampled_from(state.tree.names_of(node)))
        if isinstance(entry, E.Delete):
            return entry._replace(id=node.id, parent=parent, name=name)
        entry = entry._replace(
            id=node.id, src_parent=parent, src_name=name,
            dst_parent=data.draw(st.sampled_from(dirs)),
        )  # fmt: skip
        dst = state.tree.find(entry.dst_parent)
        there = dst.children.get(entry.dst_name) if dst and dst.children is not None else None
        if data.draw(st.booleans()):  # a move of a persisted file's or a directory's content
            entry = entry._replace(stale=None, store_from=data.draw(st.sampled_from(["a", "b"])))
        return entry._replace(replaced=there.id if there is not None else None)
    if isinstance(entry, E.OrphanReleased) and state.orphans:
        return entry._replace(id=data.draw(st.sampled_from(sorted(state.orphans))))
    # Orphans (files unlinked while open) take blocks and attributes like named files.
    named = [n for n in live if n.mode & S_IFMT == S_IFREG]
    files = named + list(state.orphans.values())
    if isinstance(entry, E.UfsFingerprint) and named:  # a persisted file, whose content moves
        return entry._replace(id=data.draw(st.sampled_from(named)).id)
    if isinstance(entry, E.SetAttr) and files:
        return entry._replace(id=data.draw(st.sampled_from(files)).id)
    if isinstance(entry, E.BlockCached) and files:
        # The file's own version, or the one above it: the next block a rewrite stages (of 4
        # bytes, the block size commits are aimed at, or the last one, shorter).
        node = data.draw(st.sampled_from(files))
        if not data.draw(st.booleans()):
            return entry._replace(file=node.id, version=node.version)
        staged = [i for v, i in state.blocks.get(node.id, {}) if v == node.version + 1]
        return entry._replace(
            file=node.id, version=node.version + 1, idx=len(staged),
            length=data.draw(st.sampled_from([4, 4, 2])),
        )  # fmt: skip
    if isinstance(entry, E.ContentCommitted) and files:
        # A file with staged blocks if there is one, its staged version, and often the length
        # those blocks hold (4-byte blocks).
        staging = [n for n in files if any(v > n.version for v, _i in state.blocks.get(n.id, {}))]
        node = data.draw(st.sampled_from(staging or files))
        blocks = state.blocks.get(node.id, {})
        held = sum(info.length for (v, _i), info in blocks.items() if v == node.version + 1)
        length = data.draw(st.sampled_from([held, held, held, entry.length]))
        block_size = data.draw(st.sampled_from([4, 4, 4, entry.block_size]))
        return entry._replace(
            id=node.id, version=node.version + 1, length=length, block_size=block_size
        )
    if isinstance(entry, E.SetXattr | E.Accessed):
        # Any inode, the root included: directories and symlinks meet the kind rule.
        return entry._replace(id=data.draw(st.sampled_from([1] + [n.id for n in live])))
    if isinstance(entry, E.StoreMoved) and state.store_moves:
        return entry._replace(id=data.draw(st.sampled_from(sorted(state.store_moves))))
    if isinstance(entry, E.BlockMoved | E.BlockRemoved) and state.blocks:
        file = data.draw(st.sampled_from(sorted(state.blocks)))
        version, idx = data.draw(st.sampled_from(sorted(state.blocks[file])))
        return entry._replace(file=file, version=version, idx=idx)
    return entry


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_admit_lets_through_exactly_what_apply_applies(data: st.DataObject) -> None:
    state = State()
    for seq in range(1, data.draw(st.integers(min_value=1, max_value=60)) + 1):
        entry = data.draw(entries)
        if data.draw(st.booleans()):
            entry = aimed(state, entry, data)
        try:
            admit(state, entry)
            admitted = True
        except Refused:
            admitted = False
        trial = copy.deepcopy(state)
        try:
            trial.apply(entry, seq)
            applied = True
        except ApplyError:
            applied = False
        assert admitted == applied, entry
        if admitted:
            state = trial

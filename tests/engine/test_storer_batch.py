"""The block storer's two halves (engine/cache/blockcache.py): ``write_block`` writes a block's
file outside the lock, ``commit_block`` journals it under the lock, a batch of them in one pass
(``CommitGate.batched``). A block whose file changed or went between the two is not journaled:
its file is removed and its room given back, and the rest of the batch is cached. A MEM tier's
block is written under its final name, exclusively; a file already there (a crash's leftover)
is replaced whole."""

from __future__ import annotations

import os
from pathlib import Path

from engine.cache.tiers import Written
from engine.engine import Engine
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore

KiB = 1 << 10
BLOCK = 256 * KiB


def _engine(
    open_engine: OpenEngine, home: Path, tmp_path: Path, files: dict[str, bytes], *sections: str
) -> Engine:
    store = LocalStore(tmp_path / "ufs")
    for key, data in files.items():
        store.put(key, data)
    write_config(home, *sections, block_size=BLOCK)  # the default tiers: MEM on /dev/shm first
    engine = open_engine()
    engine.mounts.mount("/", store.uri, {})
    return engine


def test_a_block_gone_stale_between_its_write_and_its_batch_commit_leaves_no_file_nor_room(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    files = {"b/gone": os.urandom(110_000), "b/kept": os.urandom(90_000)}
    engine = _engine(open_engine, home, tmp_path, files)
    cache = engine.cache
    assert cache is not None
    written: dict[str, Written] = {}
    for name, data in files.items():
        node = engine.sync.lookup(f"/{name}")
        got = cache.write_block((node.id, node.version, 0), data, None)
        assert isinstance(got, Written)
        written[name] = got
    tier = written["b/gone"].tier
    assert not tier.spec.sync  # the MEM tier: written under the final name
    engine.fs.delete("/b/gone")  # gone before its BlockCached: these bytes are stale
    with engine.ns.lock, engine.ns.gate.batched():
        gone = cache.commit_block(written["b/gone"])
        kept = cache.commit_block(written["b/kept"])
    assert gone is None
    assert kept
    engine.ns.gate.durable(kept)
    assert not os.path.exists(tier.path_of(written["b/gone"].key))
    assert cache.used[tier.name] == len(files["b/kept"])
    assert cache.read(written["b/kept"].key) == files["b/kept"]


def test_a_leftover_file_at_a_mem_blocks_name_is_replaced_by_the_stored_block(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    data = os.urandom(110_000)
    engine = _engine(open_engine, home, tmp_path, {"c/f": data})
    cache = engine.cache
    assert cache is not None
    node = engine.sync.lookup("/c/f")
    key = (node.id, node.version, 0)
    tier = cache.tiers[0]
    assert not tier.spec.sync
    # What a crash in the middle of a write leaves: a short file, no BlockCached.
    path = tier.path_of(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Path(path).write_bytes(data[:1000])
    assert cache.store(key, data)
    assert Path(path).read_bytes() == data
    assert cache.read(key) == data


def test_blocks_stored_back_to_back_are_durable_once_the_storer_is_drained(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    # Batches that follow each other do not wait for their entries; the wait before the
    # storer idles covers them all, and drain (flush) returns after it.
    files = {f"q/f{i:03d}": os.urandom(20_000 + i) for i in range(300)}
    # every_op: an entry waited for is synced, so durable_seq shows what the wait covered.
    engine = _engine(open_engine, home, tmp_path, files, "[journal]", 'durability = "every_op"')
    cache = engine.cache
    assert cache is not None
    nodes = {name: engine.sync.lookup(f"/{name}") for name in files}
    storer = cache.fetcher.storer
    with engine.ns.lock:  # all queued before the storer may commit any: back-to-back batches
        for name, data in files.items():
            assert storer.offer((nodes[name].id, nodes[name].version, 0), data)
    cache.drain()
    assert cache.stats.stored_blocks == len(files)
    assert engine.journal.durable_seq >= engine.journal.last_seq
    for name, data in files.items():
        assert cache.read((nodes[name].id, nodes[name].version, 0)) == data

"""A hypothesis state machine over the block cache with small random quotas and block sizes:
reads (checked against the UFS's bytes), pins, frees, files changed in the UFS and synced,
crashes (the engine abandoned mid-life, reopened), reboots (a crash that also empties the
volatile MEM tier), and files written MUST_CACHE (their blocks are the only copy). After every
step: fsck's checks hold; no tier is over its quota and the tier accounting equals the block
map; a pinned file's cached blocks stay cached; every unpersisted file is whole in the cache;
after a crash and recovery the block map matches the tier directories exactly."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.cache.tiers import BlockKey
from engine.engine import Engine
from engine.errors import NoSpace
from tests.homes import write_config
from tests.invariants import assert_fsck_clean

FILES = ["a", "b", "c", "d"]


class CacheMachine(RuleBasedStateMachine):
    @initialize(
        block_size=st.sampled_from([16, 32, 64]),
        mem=st.integers(0, 200),
        ssd=st.integers(16, 400),
        sizes=st.lists(st.integers(0, 300), min_size=len(FILES), max_size=len(FILES)),
        evictor=st.sampled_from(["LRU", "LRFU"]),
    )
    def start(self, block_size: int, mem: int, ssd: int, sizes: list[int], evictor: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="shoal-cache-sm-"))
        self.ufs = self.dir / "ufs"
        self.ufs.mkdir()
        self.content = {name: os.urandom(size) for name, size in zip(FILES, sizes, strict=True)}
        for name, data in self.content.items():
            (self.ufs / name).write_bytes(data)
        self.home = self.dir / "home"
        self.home.mkdir()
        write_config(
            self.home,
            "[journal]\ngroup_commit = false",
            f'[cache]\nevictor = "{evictor}"\nlrfu_half_life_s = 0.05',
            block_size=block_size,
            tiers=[("MEM", self.dir / "mem", mem), ("SSD", self.dir / "ssd", ssd)],
        )
        self.quotas = {"MEM": mem, "SSD": ssd}
        self.pinned: set[str] = set()
        self.written: dict[str, bytes] = {}
        self.engine = Engine.open_home(str(self.home))
        self.engine.mounts.mount("/", str(self.ufs))

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.close(checkpoint=False)
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def cached_keys(self, name: str) -> set[BlockKey]:
        node = self.engine.sync.lookup(f"/{name}")
        blocks = self.engine.state.blocks.get(node.id, {})
        return {(node.id, v, i) for v, i in blocks}

    @rule(
        name=st.sampled_from(FILES),
        offset=st.integers(0, 320),
        length=st.integers(0, 200),
        kind=st.sampled_from(["CACHE", "CACHE", "CACHE_PROMOTE", "NO_CACHE"]),
    )
    def read(self, name: str, offset: int, length: int, kind: str) -> None:
        pinned_before = {n: self.cached_keys(n) for n in self.pinned}
        got = self.engine.fs.read(f"/{name}", offset, length, read_type=kind)
        assert got == self.content[name][offset : offset + length]
        assert self.engine.cache is not None
        self.engine.cache.drain()  # blocks are stored in the background
        for n, keys in pinned_before.items():  # pinned blocks were never evicted to make room
            assert keys <= self.cached_keys(n)

    @rule(size=st.integers(1, 200))
    def write_cache_only(self, size: int) -> None:
        """A MUST_CACHE file: its blocks are the only copy and must never be evicted."""
        name = f"w{len(self.written)}"
        data = os.urandom(size)
        try:
            self.engine.fs.write_file(f"/{name}", io.BytesIO(data), write_type="MUST_CACHE")
        except NoSpace:
            assert name not in (self.engine.ns.tree.root.children or {})
            return
        self.written[name] = data

    @invariant()
    def unpersisted_data_is_all_there(self) -> None:
        if not hasattr(self, "engine"):
            return
        for name, data in self.written.items():
            node = self.engine.ns.lookup(f"/{name}")
            assert sum(i.length for i in self.engine.state.blocks[node.id].values()) == len(data)
            assert self.engine.fs.read(f"/{name}", 0, len(data)) == data

    @rule(name=st.sampled_from(FILES))
    def pin(self, name: str) -> None:
        self.engine.sync.lookup(f"/{name}")  # loaded from the UFS first, as any access does
        self.engine.ns.setattr(f"/{name}", pinned=True)
        self.pinned.add(name)

    @rule(name=st.sampled_from(FILES))
    def unpin(self, name: str) -> None:
        self.engine.sync.lookup(f"/{name}")
        self.engine.ns.setattr(f"/{name}", pinned=False)
        self.pinned.discard(name)

    @rule(name=st.sampled_from(FILES))
    def free(self, name: str) -> None:
        assert self.engine.cache is not None
        self.engine.cache.free(self.engine.sync.lookup(f"/{name}").id)
        assert not self.cached_keys(name)

    @rule(name=st.sampled_from(FILES), size=st.integers(0, 300))
    def change_in_ufs(self, name: str, size: int) -> None:
        data = os.urandom(size)
        (self.ufs / name).write_bytes(data)
        self.content[name] = data
        self.engine.sync.sync(f"/{name}")
        assert not self.cached_keys(name)  # the old version's blocks are gone from the map

    @rule()
    def crash(self) -> None:
        self._restart(reboot=False)

    @rule(name=st.sampled_from(FILES))
    def crash_with_stores_queued(self, name: str) -> None:
        """A crash while the storer still holds blocks a read fetched: they are lost, and only
        that: not cached, and what the map lists is on disk (checked after the restart)."""
        assert self.engine.cache is not None
        node = self.engine.sync.lookup(f"/{name}")
        assert self.engine.fs.read_node(node, 0, node.size) == self.content[name]
        self.engine.cache.fetcher.storer.discard()
        self._restart(reboot=False)
        after = self.engine.sync.lookup(f"/{name}")
        assert self.engine.fs.read_node(after, 0, after.size) == self.content[name]
        self.engine.cache.drain()

    @rule()
    def reboot(self) -> None:
        """A crash that also empties the volatile MEM tier, as a reboot empties /dev/shm: the
        files written MUST_CACHE are still whole (unpersisted_data_is_all_there)."""
        self._restart(reboot=True)

    def _restart(self, reboot: bool) -> None:
        # Abandoned, not closed: every acknowledged entry is on disk already (inline commits).
        # (Between operations: the background block writer has finished; a crash during a
        # store leaves a temporary or orphan file, which reconcile covers below.)
        assert self.engine.cache is not None
        self.engine.cache.drain()
        self.engine.cache.close()
        # What the kernel closes when a process dies: the log segment's descriptor (nothing is
        # queued to write: commits are inline) and the connectors' (a local UFS holds its
        # root's). Else each restart kept them, ~1,000 in a run: past 1024 a journal writer
        # process started later by the same test worker could not select() on its pipes.
        self.engine.journal.close()
        self.engine.mounts.close()
        lock = self.engine._lock
        assert lock is not None
        lock.release()
        if reboot:
            shutil.rmtree(self.dir / "mem", ignore_errors=True)
        self.engine = Engine.open_home(str(self.home))  # recovery + reconcile
        self.pinned = {n for n in FILES if self.engine.sync.lookup(f"/{n}").flags & 4}
        on_disk = set()
        assert self.engine.cache is not None
        for tier in self.engine.cache.tiers:
            for key, _path, size in tier.scan():
                assert key is not None
                on_disk.add((tier.name, key, size))
        in_map = {
            (info.tier, (file, v, i), info.length)
            for file, blocks in self.engine.state.blocks.items()
            for (v, i), info in blocks.items()
        }
        assert on_disk == in_map

    @invariant()
    def fsck_is_clean(self) -> None:
        if hasattr(self, "engine"):
            assert_fsck_clean(self.engine)

    @invariant()
    def within_quotas(self) -> None:
        if not hasattr(self, "engine"):
            return
        cache = self.engine.cache
        assert cache is not None
        mapped = {"MEM": 0, "SSD": 0}
        for blocks in self.engine.state.blocks.values():
            for info in blocks.values():
                mapped[info.tier] += info.length
        for tier, quota in self.quotas.items():
            assert mapped[tier] <= quota
            assert cache.used[tier] >= mapped[tier]  # reserved bytes of stale files included
            assert cache.used[tier] <= quota

    @invariant()
    def eviction_work_done_at_rest(self) -> None:
        """Whoever made room ran its queued copies and deletions (engine/cache/evicting.py):
        none is left, no block is detached, and each tier counts exactly its ordered blocks."""
        if not hasattr(self, "engine"):
            return
        cache = self.engine.cache
        assert cache is not None
        pending = cache.pending
        assert not pending.jobs and not pending.moving and not pending.unlinking
        for tier, lru in cache.lru.items():
            assert cache.used[tier] == sum(lru.values()), tier


TestCacheMachine = CacheMachine.TestCase
TestCacheMachine.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

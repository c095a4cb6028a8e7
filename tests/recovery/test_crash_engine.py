"""The whole engine against crashes (docs/operations.md, "What the crash proofs cover"): files
below a local UFS written with every write type, rewritten, renamed, deleted; uploads run step
by step, with changes made while one runs; evictions, frees, pins, TTLs; UFS changes synced; a
UFS that refuses writes; checkpoints and clean restarts. A crash is the journal cut after any
of its storage operations (recovery/crashsim.py) with the tiers and the UFS as they stood then
(tests/recovery/engine_world.py): a kill -9, or a power loss that also empties the MEM tier.
Each recovery must match the model after some operation between the last acknowledged one and
the last one issued. A long run with fresh seeds: SHOAL_CRASH_EXAMPLES=N."""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test

from engine import errors as err
from engine.engine import Engine
from engine.inode import ROOT_ID
from journal.journal import JournalOptions
from recovery.crashsim import Crash, SimStorage
from tests.invariants import assert_fsck_clean
from tests.models.data_model import (
    WHERE,
    WRITE_TYPES,
    File,
    Files,
    copy_of,
    m_changed_in_ufs,
    m_chmod,
    m_delete,
    m_rename,
    m_uploaded,
    m_write,
    view,
    where_of,
)
from tests.models.housekeeping import Housekeeping, crash_settings, quiet_logs
from tests.models.namespace_model import Refused, check_refused, outcome
from tests.recovery.engine_world import World, block_map, persister_of, tier_files

NAMES = ("a", "b", "c")
MIN_CRASH_STATES = 4_000  # with the namespace machine's, well over 10,000 a CI run
CRASH_STATES = 0
NEVER = 1 << 62  # the acknowledgement of a state an operation passes through
SPREAD_TOP = 1 << 16
SPREAD = st.integers(0, SPREAD_TOP)  # a choice among a number of things known only when run


class Step(NamedTuple):
    issued: int  # storage op_count when the operation started
    acked: int  # when it returned
    model: Files  # the files after it


class EngineCrashMachine(Housekeeping):
    def __init__(self) -> None:
        super().__init__()
        self.engine: Engine | None = None
        self.model: Files = {}
        self.history: list[Step] = []
        self.written = 0  # writes so far: each one's bytes differ from every other's

    def teardown(self) -> None:
        if self.engine is not None:
            self.engine.close(checkpoint=False)
        self.engine = None
        if hasattr(self, "world"):
            shutil.rmtree(self.world.top, ignore_errors=True)

    # -- set-up -------------------------------------------------------------------------------

    @initialize(
        block_size=st.sampled_from([16, 64]),
        mem=st.sampled_from([0, 48, 200]),
        ssd=st.sampled_from([600, 1000]),
        segment_size=st.integers(400, 4000),
        checkpoint_every=st.sampled_from([0, 0, 7, 30]),
        files=st.lists(
            st.tuples(st.sampled_from(NAMES), st.integers(0, 150), st.sampled_from(WRITE_TYPES)),
            max_size=3,
        ),
    )
    def start(
        self, block_size: int, mem: int, ssd: int, segment_size: int, checkpoint_every: int,
        files: list[tuple[str, int, str]],
    ) -> None:  # fmt: skip
        options = JournalOptions(
            segment_size=segment_size, checkpoint_every=checkpoint_every, group_commit=False
        )
        top = Path(tempfile.mkdtemp(prefix="shoal-crash-engine-"))
        self.world = World(top, options, block_size, mem, ssd)
        storage = SimStorage()
        engine = self.world.open(storage)
        engine.mounts.mount("/", self.world.ufs)
        for name, size, kind in files:  # a few files to start from, their uploads queued
            data = self._data(size)
            engine.fs.write_file(f"/{name}", io.BytesIO(data), write_type=kind)
            self.model = m_write(self.model, name, data, kind, False)
        engine.close()
        # Crashes come after the mount: the durable disk it left is where the log starts.
        self.storage = storage.crashed(storage.op_count)
        self.world.watch(self.storage, self.world.files())
        self.engine = self.world.open(self.storage)
        self.history = [Step(-1, 0, self.model)]

    @property
    def live(self) -> Engine:
        assert self.engine is not None
        return self.engine

    # -- running operations against the model -----------------------------------------------

    def _run(
        self, expect: Files | Refused, call: Callable[[], Any], between: tuple[Files, ...] = ()
    ) -> None:
        """Runs ``call``: it fails exactly when the model says so, and then journals nothing.
        A crash before it returns may also leave one of the states ``between``."""
        self.live.sync.lookup("/")  # the mount's first listing after a start is not this call's
        before = self.storage.op_count
        if isinstance(expect, Refused):
            check_refused(expect, call, lambda: self.storage.op_count)
            return
        call()
        self.history.extend(Step(before, NEVER, partial) for partial in between)
        self.history.append(Step(before, self.storage.op_count, expect))
        self.model = expect

    def _data(self, size: int) -> bytes:
        self.written += 1
        return (f"<{self.written}>".encode() * (size // 3 + 1))[:size]

    def _write(self, name: str, size: int, write_type: str, by_path_conf: bool = False) -> None:
        data = self._data(size)
        asked = None if by_path_conf else write_type
        expect = outcome(m_write, self.model, name, data, write_type, self.world.ufs_down)
        # A new file is created before its content is written: a crash in between leaves it
        # empty, as a crash between open(O_CREAT) and write does. A write through the store
        # over a file it holds no copy of first records that it may (StoreCopy).
        old = self.model.get(name)
        between = (
            ({**self.model, name: File(b"", "cache")},)
            if old is None
            else ({**self.model, name: old._replace(copy=True)},)
            if not old.copy and WHERE[write_type] == "ufs"
            else ()
        )
        self._run(
            expect,
            lambda: self.live.fs.write_file(f"/{name}", io.BytesIO(data), write_type=asked),
            between,
        )

    def _delete(self, name: str) -> None:
        expect = outcome(m_delete, self.model, name, self.world.ufs_down)
        self._run(expect, lambda: self.live.fs.delete(f"/{name}"))

    def _rename(self, src: str, dst: str) -> None:
        expect = outcome(m_rename, self.model, src, dst, self.world.ufs_down)
        self._run(expect, lambda: self.live.fs.rename(f"/{src}", f"/{dst}"))

    def _name_of(self, file: int) -> str | None:
        node = self.live.ns.tree.find(file)
        return None if node is None else node.name

    # -- writes, names ------------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), size=st.integers(0, 150), kind=st.sampled_from(WRITE_TYPES))
    def write(self, name: str, size: int, kind: str) -> None:
        self._write(name, size, kind)

    @rule(name=st.sampled_from(NAMES), size=st.integers(0, 150), kind=st.sampled_from(WRITE_TYPES))
    def write_by_path_conf(self, name: str, size: int, kind: str) -> None:
        """The write type from a path conf (fs pathconf set / write_type=...), journaled before
        the write: a crash keeps both, the conf alone or neither, and the write behaves as the
        type says (the model knows nothing of the conf: no file changes with it)."""
        self._run(self.model, lambda: self.live.fs.pathconf.set("/", {"write_type": kind}))
        self._write(name, size, kind, by_path_conf=True)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        self._delete(name)

    @rule(src=st.sampled_from(NAMES), dst=st.sampled_from(NAMES))
    def rename(self, src: str, dst: str) -> None:
        if src != dst:
            self._rename(src, dst)

    @rule(name=st.sampled_from(NAMES), mode=st.sampled_from([0o600, 0o640, 0o755]))
    def chmod(self, name: str, mode: int) -> None:
        """chmod through the mount: the store's file first (a persisted file), or the journal
        only, and then the file's upload carries it."""
        expect = outcome(m_chmod, self.model, name, mode, self.world.ufs_down)

        def chmod() -> None:
            self.live.fs.setattr_of(self.live.ns.lookup(f"/{name}").id, mode=mode)

        self._run(expect, chmod)

    # -- the persister ------------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES))
    def request_persist(self, name: str) -> None:
        """`shoal fs persist` of a file written MUST_CACHE: its upload is queued."""
        if name not in self.model:
            return
        expect = self.model
        if expect[name].where == "cache":
            expect = {**expect, name: expect[name]._replace(where="pending", copy=True)}
        node = self.live.ns.lookup(f"/{name}")
        self._run(expect, lambda: self.live.fs.persist(node))

    @rule(
        data=st.data(),
        during=st.sampled_from(["", "delete", "rename", "rewrite"]),
        at_end=st.booleans(),
        dst=st.sampled_from(NAMES),
        kind=st.sampled_from(WRITE_TYPES),
    )
    def persist_step(
        self, data: st.DataObject, during: str, at_end: bool, dst: str, kind: str
    ) -> None:
        """Runs one queued upload; ``during`` changes the file while it is under way: once
        the upload has begun reading, or (``at_end``) once it has read everything."""
        queue = persister_of(self.live).queue
        if not queue:
            return
        index = data.draw(SPREAD) % len(queue)
        file = queue[index][0]
        # An upload takes the version pending when it runs, whatever it was queued for (a
        # request queued again after a hold names none).
        version = self.live.state.persists.get(file)
        node = self.live.ns.tree.find(file)
        current = version is not None and node is not None and node.version == version
        name = self._name_of(file)
        changes: list[BaseException] = []
        if current and during and not self.world.ufs_down and name is not None:

            def change() -> None:
                # The change holds the upload: one that has read everything lands (and is
                # journaled) before the change goes on, a state a crash may leave.
                if name in self.model and self.model[name].where == "pending":
                    landed = m_uploaded(self.model, name)
                    self.history.append(Step(self.storage.op_count, NEVER, landed))
                try:
                    if during == "delete":
                        self._delete(name)
                    elif during == "rename" and dst != name:
                        self._rename(name, dst)
                    elif during == "rewrite":
                        self._write(name, 40, kind)
                except BaseException as exc:  # re-raised here, not logged by the persister
                    changes.append(exc)

            self.world.during = change
            self.world.during_at_end = at_end
        before = self.storage.op_count
        persister_of(self.live).step(index)
        self.world.during = None
        changed_midway = bool(self.world.midway)
        while self.world.midway:  # the change the upload started, finished too
            self.world.midway.pop().join()
        if changes:
            raise changes[0]
        expect = self.model
        node = self.live.ns.tree.find(file)
        landed = current and node is not None and node.version == version
        if landed and changed_midway:
            # A change during the upload holds it: called off, it stays pending (queued again);
            # or it had landed first. Both keep every acknowledged byte; the engine says which.
            landed = where_of(self.live, node.name) == "ufs"  # type: ignore[union-attr]
        if landed and not self.world.ufs_down:
            expect = m_uploaded(expect, node.name)  # type: ignore[union-attr]
        self.history.append(Step(before, self.storage.op_count, expect))
        self.model = expect

    # -- the cache ----------------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), kind=st.sampled_from(["CACHE", "CACHE_PROMOTE", "NO_CACHE"]))
    def read(self, name: str, kind: str) -> None:
        """Reads fill the tiers: blocks are demoted from MEM, and dropped from SSD, as the
        evictor says (the tiers are a few blocks large)."""
        if name not in self.model:
            with pytest.raises(err.NotFound):
                self.live.fs.read(f"/{name}", 0, 1)
            return
        want = self.model[name].content
        assert self.live.fs.read(f"/{name}", 0, len(want) + 1, read_type=kind) == want
        assert self.live.cache is not None
        self.live.cache.drain()

    @rule(name=st.sampled_from(NAMES))
    def free(self, name: str) -> None:
        if name in self.model:
            assert self.live.cache is not None
            self.live.cache.free(self.live.ns.lookup(f"/{name}").id)

    @rule(name=st.sampled_from(NAMES), pinned=st.booleans(), media=st.sampled_from([[], ["SSD"]]))
    def pin(self, name: str, pinned: bool, media: list[str]) -> None:
        if name in self.model:
            self._run(
                self.model, lambda: self.live.ns.setattr(f"/{name}", pinned=pinned, media=media)
            )

    @rule(name=st.sampled_from(NAMES), action=st.sampled_from(["free", "delete"]))
    def ttl(self, name: str, action: str) -> None:
        """A TTL that has passed: the checker frees or deletes the file (and acts on any TTL a
        crash left set but never acted on)."""
        if name not in self.model:
            return
        self._run(self.model, lambda: self.live.ns.setattr(f"/{name}", ttl_ms=0, ttl_action=action))
        later = time.time_ns() + 10**15
        expect = self.model
        partial: list[Files] = []  # a sweep deletes file after file: a crash may cut between
        for path, _node, act in self.live.ttl.expired(later):
            if act == "delete":
                after = outcome(m_delete, expect, path.lstrip("/"), self.world.ufs_down)
                expect = expect if isinstance(after, Refused) else after
                partial.append(expect)
        self._run(expect, lambda: self.live.ttl.run_once(later), tuple(partial[:-1]))

    # -- the UFS ------------------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), size=st.one_of(st.none(), st.integers(0, 150)))
    def change_in_ufs(self, name: str, size: int | None) -> None:
        """Another writer changes (or removes: None) the file in the UFS; a sync follows."""
        if name in self.model and self.model[name].where != "ufs":
            return  # Shoal holds newer content than the store: nobody else writes it there
        path = Path(self.world.ufs) / name
        data = None if size is None else self._data(size)

        def change_and_sync() -> None:
            # Inside _run: the first listing after a start, which _run does first, must not
            # see the change before the operation counts as issued.
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
            self.live.sync.sync("/")

        self._run(m_changed_in_ufs(self.model, name, data), change_and_sync)

    @rule()
    def sync(self) -> None:
        """Syncing with a UFS nobody else changed changes nothing Shoal shows."""
        self._run(self.model, lambda: self.live.sync.sync("/"))

    @rule(down=st.booleans())
    def ufs_refuses_writes(self, down: bool) -> None:
        self.world.ufs_down = down

    # -- housekeeping -------------------------------------------------------------------------

    def reopen(self) -> Engine:
        return self.world.open(self.storage)

    def after_clean_restart(self, before: str, final_checkpoint: bool) -> None:
        self._check(self.live, [self.model], "a clean restart")

    # -- crashes ------------------------------------------------------------------------------

    def _candidates(self, cut: int) -> list[Files]:
        # The files of a cut are those when the operation after it was issued: an operation
        # that had started by then may have changed the UFS before its first journal entry.
        acked = max(i for i, s in enumerate(self.history) if s.acked <= cut)
        issued = max([acked] + [i for i, s in enumerate(self.history) if s.issued <= cut])
        return [s.model for s in self.history[acked : issued + 1]]

    def _check(self, engine: Engine, candidates: list[Files], what: str) -> Files:
        state = engine.state
        assert [(m.id, m.uri) for m in state.mounts.values()] == [(ROOT_ID, self.world.ufs)]
        assert tier_files(engine) == block_map(engine), f"{what}: tier files and block map differ"
        assert not state.orphans, f"{what}: a file unlinked while open outlived it"
        assert_fsck_clean(engine)
        engine.sync.sync("/")  # what the first look at the mount after a start does
        try:
            got = view(engine)
        except err.DataLost as exc:
            raise AssertionError(f"{what}: acknowledged data lost: {exc}") from exc
        assert engine.cache is not None
        engine.cache.drain()
        assert_fsck_clean(engine)
        for model in reversed(candidates):
            if got == model:
                return model
        raise AssertionError(
            f"{what}: the files match no model between the last acknowledged and the last"
            f" issued operation:\n  recovered: {got}\n  candidates: {candidates}"
        )

    def _explore(self, data: st.DataObject, cuts: list[int], per_cut: int) -> None:
        """Recovers from crash states and checks each; the machine continues from one."""
        global CRASH_STATES
        # A seed, not st.randoms: how many numbers the crashes take varies between runs.
        rng = random.Random(data.draw(st.integers(0, 1 << 32)))
        plans = []
        for cut in cuts:
            files = self.world.files_at(self.storage, cut)
            pending = len(self.storage.pending_at(cut))
            for crash in self.storage.sample_crashes(cut, rng, per_cut):
                # Everything written kept: a kill -9 (the MEM tier survives) or a power loss
                # that happened to lose nothing. Anything lost: a power loss, MEM wiped.
                whole = crash.prefix == pending and crash.tear is None
                reboot = not whole or rng.random() < 0.3
                lost = self.world.power_loss(self.storage, cut, files, rng) if reboot else files
                plans.append((crash, lost, reboot, self._candidates(cut)))
        keep = data.draw(SPREAD) % len(plans)
        plans.append(plans.pop(keep))  # the survivor last: each recovery rewrites the files
        old, self.engine = self.engine, None
        if old is not None:
            old.close(checkpoint=False)  # its storage is left behind: only its threads stop
        for i, (crash, files, reboot, candidates) in enumerate(plans):
            survivor = i == len(plans) - 1
            self._recover(crash, files, reboot, candidates, survivor)
            CRASH_STATES += 1

    def _recover(
        self, crash: Crash, files: dict[str, tuple[bytes, int]], reboot: bool,
        candidates: list[Files],
        survivor: bool,
    ) -> None:  # fmt: skip
        what = f"recovery from {crash} ({'reboot' if reboot else 'kill -9'})"
        storage = SimStorage(self.storage.crash_image(crash))
        kept = self.world.restore(files, reboot)
        if survivor:
            self.world.watch(storage, kept)
        try:
            engine = self.world.open(storage)
        except Exception as exc:
            raise AssertionError(f"{what} failed: {exc}") from exc
        try:
            model = self._check(engine, candidates, what)
        except BaseException:
            engine.close(checkpoint=False)
            raise
        if survivor:
            self.storage, self.engine, self.model = storage, engine, model
            self.history = [Step(-1, 0, model)]
        else:
            engine.close(checkpoint=False)

    def _cuts(self, data: st.DataObject, start: int, end: int) -> list[int]:
        """``end`` and a few cuts between ``start`` and it. Drawn as fractions: how many
        operations an example writes varies between runs (fingerprints and times in entries
        change their size, so where segments rotate), and hypothesis must draw alike."""
        fractions = data.draw(st.lists(SPREAD, min_size=2, max_size=5))
        return sorted({end, *(start + f * (end - start) // SPREAD_TOP for f in fractions)})

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        end = self.storage.op_count
        self._explore(data, self._cuts(data, 0, end), per_cut=6)

    @rule(data=st.data())
    def crash_in_last_operation(self, data: st.DataObject) -> None:
        """Crashes anywhere inside the most recent operation that wrote something."""
        start = max(self.history[-1].issued, 0) if len(self.history) > 1 else 0
        end = self.storage.op_count
        self._explore(data, self._cuts(data, start, end), per_cut=6)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        if self.engine is None:
            return
        assert not self.world.fatal, f"the journal failed: {self.world.fatal}"
        names = sorted(self.engine.ns.tree.root.children or {})
        assert names == sorted(self.model)
        for name, file in self.model.items():
            assert where_of(self.engine, name) == file.where, name
            assert copy_of(self.engine, name) == file.copy, f"{name}: may the store hold it?"
            assert self.engine.ns.lookup(f"/{name}").mode & 0o7777 == file.mode, name
            if file.where == "ufs":
                store = os.stat(Path(self.world.ufs) / name).st_mode & 0o7777
                assert store == file.mode, f"{name}: the store has {store:o}"
            got = self.engine.fs.read(f"/{name}", 0, len(file.content) + 1)
            assert got == file.content, name
        assert self.engine.cache is not None
        self.engine.cache.drain()

    @invariant()
    def fsck_is_clean(self) -> None:
        if self.engine is not None:
            assert_fsck_clean(self.engine)


# Shrinking one failure of this machine takes minutes: the first is reported.
EngineCrashMachine.TestCase.settings = crash_settings(400, report_multiple_bugs=False)


def test_crash_engine(capsys: pytest.CaptureFixture[str]) -> None:
    """The machine (quiet: every torn tail and refused upload logs a line); fails below
    MIN_CRASH_STATES crash states recovered and checked."""
    start, before = time.monotonic(), CRASH_STATES
    with capsys.disabled(), quiet_logs("journal", "engine"):
        settings = EngineCrashMachine.TestCase.settings
        run_state_machine_as_test(EngineCrashMachine, settings=settings)
        explored = CRASH_STATES - before
        took = time.monotonic() - start
        print(
            f"\nengine crash machine: {explored} crash states recovered and checked in {took:.1f}s"
        )
    assert explored >= MIN_CRASH_STATES, f"only {explored} crash states explored"

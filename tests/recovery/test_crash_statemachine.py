"""Random namespace operations, checkpoints, segment rotations, clean restarts and crashes
against a plain model.

After every recovery the namespace must equal the model as it was after some operation between
the last acknowledged one and the last issued one: nothing acknowledged is lost and nothing is
half-applied. Each example draws who writes the live journal: inline (no group commit), the
writer thread, or the writer process (the production path: the real child process, its storage
operations served by this process's SimStorage, journal/remote_storage.py). One caller appends
and waits at a time, so with any of them the storage operation counter says exactly when an
operation was issued and acknowledged. An operation that appends several entries (mkdir -p)
hands them to the writer at once; an example may draw ``split`` instead: every entry is
acknowledged before the next is committed, so a crash can fall between them. Either way the
storage log is a function of the draws, as hypothesis needs to replay and shrink a failure
(tests/recovery/test_crash_determinism.py). Recovering a crashed image is checked with an inline
journal (starting a child for each of thousands of recoveries would cost minutes); the one a run
continues from is reopened with a group-commit writer: in a writer-process example, the process
after a clean restart and after two crashes of three, the thread after the third.
A crash is simulated right after any storage operation (a *cut*), keeping any prefix of what was
not yet durable, with the last surviving write possibly torn (or every surviving write reduced
to some of its sectors: a power loss with several writes not yet synced).

Each example also draws the durability (journal.durability, docs/operations.md). With
"commit_interval" and the writer process, an operation is acknowledged once its entries are
written to the log and durable at the next sync (the `sync` rule: what fsync and fsyncdir call)
or within the interval; after a crash that kept everything written (a kill -9) the namespace is
at or after the last acknowledged operation, after any other crash (a power loss) at or after
the last one made durable by a sync: a prefix of the issued operations either way.

The layers above the namespace (cache tiers, write types, the persister, metadata sync) have
their own crash machine, over real tier and UFS files: tests/recovery/test_crash_engine.py.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from engine import openfiles
from engine.engine import Engine
from engine.names import NAME_MAX
from engine.snapshot import digest
from journal.errors import JournalFailed
from journal.journal import JournalOptions
from recovery.crashsim import Crash, Create, FsyncDir, Rename, SimStorage, Unlink, Write
from tests.invariants import assert_fsck_clean
from tests.models.housekeeping import Housekeeping, crash_settings
from tests.models.namespace_model import (
    NAMES,
    ROOT,
    Model,
    Refused,
    check_refused,
    dump,
    join,
    m_complete,
    m_create,
    m_delete,
    m_link,
    m_mkdir,
    m_pathconf_set,
    m_pathconf_unset,
    m_rename,
    m_setattr,
    m_setxattr,
    m_symlink,
    outcome,
    parts_of,
    resolve,
)

MIN_CRASH_STATES = 10_000
WRITERS = ("inline", "thread", "process")
# Every recovered crash state checked across the whole run, by the live journal's writer; and
# how many writer processes the run started.
CRASH_STATES = dict.fromkeys(WRITERS, 0)
EXAMPLES = dict.fromkeys(WRITERS, 0)  # by the writer each example drew
SPAWNS = [0]
DURABILITIES = ("commit_interval", "every_op")

# An example's set-up, drawn by CrashMachine.start (tests/recovery/test_crash_determinism.py
# draws the same, with a group-commit writer only).
START_DRAWS: dict[str, st.SearchStrategy[Any]] = dict(
    segment_size=st.integers(200, 2000),
    checkpoint_every=st.sampled_from([0, 0, 4, 9, 25]),
    keep=st.integers(1, 3),
    # Off, a few fills per segment, one fill of the whole segment (journal/writer.py).
    preallocate=st.sampled_from([0, 96, 1 << 20]),
    writer=st.sampled_from(WRITERS),
    durability=st.sampled_from(DURABILITIES),
    split=st.booleans(),
)
# Crash states recovered while the live journal acknowledged before syncing (writer process
# with a commit interval), and how many of those lost something that was acknowledged.
INTERVAL_STATES = [0, 0]


# -- the machine ---------------------------------------------------------------------------------


class Step(NamedTuple):
    issued: int  # storage op_count when the operation started
    acked: int  # storage op_count when it returned (a huge number if it never did)
    model: Model  # the namespace after it
    durable: int  # op_count by which it was made durable (acked, unless a commit interval)


NEVER = 1 << 62
# Draws about the storage log (cuts, which crash to go on from) take values in 0..SPAN and scale
# them: with a group-commit writer the entries of one operation (mkdir -p), appended before one
# wait, may be written in one batch or in several, so the log's length is not the same in
# every run, and draws bounded by it would make hypothesis's data generation inconsistent.
SPAN = 1 << 16


def _scaled(data: st.DataObject, lo: int, hi: int, min_size: int, max_size: int) -> list[int]:
    """``min_size`` to ``max_size`` integers in ``lo..hi``, drawn independently of the bounds."""
    raw = data.draw(st.lists(st.integers(0, SPAN), min_size=min_size, max_size=max_size))
    return [lo + v * (hi - lo) // SPAN for v in raw]


def _picked(data: st.DataObject, items: list[Any], least: int, most: int) -> list[Any]:
    return [items[i] for i in _scaled(data, 0, len(items) - 1, least, most)]


class CrashMachine(Housekeeping):
    def __init__(self) -> None:
        super().__init__()
        self.fatal: list[BaseException] = []
        self.writer = "inline"  # drawn for the example
        self.live_writer = "inline"  # the live journal's
        self.durability = "every_op"  # drawn for the example
        self.interval_ms = 5.0
        self.split = False  # drawn: each entry acknowledged before the next is committed
        self.explored = 0
        self.recovery_options = JournalOptions()
        self.storage = SimStorage()
        self.engine: Engine | None = None
        self.model: Model = {"/": ROOT}
        self.history: list[Step] = []

    def teardown(self) -> None:
        # Hypothesis keeps this machine in a reference cycle: drop what it holds (logs with the
        # checkpoint images of a whole example) now, not whenever (or, if a large state build
        # ran gc.freeze, never) the cyclic collector gets to it.
        self._stop_writer()
        self.engine = None
        self.storage = SimStorage()
        self.history = []
        self.model = {}

    # -- plumbing -----------------------------------------------------------------------------

    def _open(self, storage: SimStorage, *, live: bool = False, writer: str = "") -> Engine:
        """The engine on ``storage``: for the ``live`` one the run goes on with, with
        ``writer`` (by default the drawn one); else inline (a recovery being checked)."""
        if not live:
            return Engine(storage, self.recovery_options, on_fatal=self.fatal.append)
        self.live_writer = writer = writer or self.writer
        storage.serves_writer_process = writer == "process"
        SPAWNS[0] += writer == "process"
        # flush_window 0: the writer takes each entry as it comes, as its caller waits for it.
        options = replace(
            self.recovery_options,
            group_commit=writer != "inline",
            writer="thread" if writer == "thread" else "process",
            flush_window_ms=0,
            durability=self.durability,
            commit_interval_ms=self.interval_ms,
        )
        engine = Engine(storage, options, on_fatal=self.fatal.append)
        if self.split and writer != "inline":
            # As a writer that wakes for every entry batches them: one entry a write, so a
            # crash can fall between the entries of one operation (mkdir -p). Waiting here,
            # not leaving it to the writer's timing, keeps the log a function of the draws.
            journal = engine.journal
            engine.gate.observers.append(lambda entry: journal.wait(journal.last_seq))
        return engine

    @property
    def interval(self) -> bool:
        """Whether the live journal acknowledges entries before they are durable."""
        return self.live_writer == "process" and self.durability == "commit_interval"

    def _stop_writer(self) -> None:
        """Stops the live journal's writer (its thread, or its process and the thread serving
        it) before the run leaves that engine: only its storage's log is kept."""
        if self.engine is not None:
            self.engine.journal.close()

    def _restart_history(self) -> None:
        # Everything the storage logged so far rebuilds self.model; a crash during that
        # (recovery, reopening) must still come back to it.
        self.history = [Step(-1, 0, self.model, 0)]

    @property
    def ns(self) -> Any:
        assert self.engine is not None
        return self.engine.ns

    def _run(self, expect: list[Model] | Model | Refused | None, call: Callable[[], Any]) -> None:
        """Runs ``call``; it must fail exactly when the model says so, and then write nothing."""
        before = self.storage.op_count
        if isinstance(expect, Refused):
            check_refused(expect, call, lambda: self.storage.op_count)
            return
        call()
        after = self.storage.op_count
        states = [] if expect is None else expect if isinstance(expect, list) else [expect]
        if not states:
            assert after == before, "a no-op wrote to the journal"
        durable = NEVER if self.interval else after
        for model in states:
            self.history.append(Step(before, after, model, durable))
            self.model = model

    def _expect(self, fn: Callable[..., Any], *args: Any) -> Any:
        return outcome(fn, self.model, *args)

    def _path(self, data: st.DataObject, *, existing: float = 0.6) -> str:
        """A path that exists (often), or a random one of the small alphabet."""
        paths = sorted(p for p in self.model if p != "/" and p.startswith("/"))
        if paths and data.draw(st.integers(0, 9)) < existing * 10:
            base = data.draw(st.sampled_from(paths))
            if data.draw(st.booleans()) and self.model[base].kind == "dir":
                return join(base, data.draw(st.sampled_from(NAMES)))
            return base
        names = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
        return "/" + "/".join(names)

    # -- set-up -------------------------------------------------------------------------------

    @initialize(**START_DRAWS)  # type: ignore[call-overload]  # (a spread dict could hold target=)
    def start(
        self,
        segment_size: int,
        checkpoint_every: int,
        keep: int,
        preallocate: int,
        writer: str,
        durability: str,
        split: bool = False,
    ) -> None:
        # Longer than any example: only the sync rule (and checkpoints) make entries durable,
        # so what a crash keeps depends on the draws, never on the clock (hypothesis needs
        # that). The background sync is tested through real mounts (tests/fuse/).
        self.durability, self.interval_ms = durability, 1e9
        self.recovery_options = JournalOptions(
            segment_size=segment_size,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep,
            group_commit=False,
            preallocate=preallocate,
        )
        self.writer, self.split = writer, split
        EXAMPLES[writer] += 1
        self._restart_history()
        self.engine = self._open(self.storage, live=True)

    # -- namespace operations -----------------------------------------------------------------

    @rule(data=st.data(), perm=st.sampled_from([0o755, 0o700]), uid=st.integers(0, 2))
    def mkdir(self, data: st.DataObject, perm: int, uid: int) -> None:
        path = self._path(data, existing=0.3)
        parents = data.draw(st.booleans())
        expect = self._expect(m_mkdir, path, perm, uid, parents)
        self._run(expect, lambda: self.ns.mkdir(path, perm, uid, uid, parents=parents))

    @rule(data=st.data(), perm=st.sampled_from([0o644, 0o600]), uid=st.integers(0, 2))
    def create(self, data: st.DataObject, perm: int, uid: int) -> None:
        path = self._path(data, existing=0.4)
        self._run(
            self._expect(m_create, path, perm, uid), lambda: self.ns.create(path, perm, uid, uid)
        )

    @rule(
        data=st.data(),
        link=st.sampled_from(["a", "../b/c", "/x/y", "", "t\0", "t\udcff/u", "\udcc3\udca9"]),
    )
    def symlink(self, data: st.DataObject, link: str) -> None:
        path = self._path(data, existing=0.4)
        expect = self._expect(m_symlink, path, link, 1)
        self._run(expect, lambda: self.ns.symlink(path, link, 1, 1))

    @rule(
        data=st.data(),
        length=st.sampled_from([0, 1, 5000, 1 << 33, -1]),
        block_size=st.sampled_from([1 << 20, 4096, 3]),
    )
    def complete(self, data: st.DataObject, length: int, block_size: int) -> None:
        path = self._path(data, existing=0.9)
        found = self._expect(lambda m: resolve(m, parts_of(path)))
        if isinstance(found, Refused):
            with pytest.raises(found.error):
                self.ns.lookup(path)
            return
        ino = self.ns.lookup(path).id
        expect = self._expect(m_complete, path, length, block_size)
        self._run(expect, lambda: self.ns.complete(ino, length, block_size))

    @rule(
        data=st.data(),
        changes=st.fixed_dictionaries(
            {},
            optional={
                "mode": st.sampled_from([0o600, 0o4755, 0o100644]),
                "uid": st.integers(0, 3),
                "gid": st.integers(0, 3),
                "size": st.sampled_from([0, 10, 1 << 40, -5]),
                "pinned": st.booleans(),
                "media": st.sampled_from([["ssd"], ["mem", "ssd"], []]),
                "ttl_ms": st.sampled_from([-1, 0, 60_000]),
                "ttl_action": st.sampled_from(["free", "delete"]),
                "atime": st.integers(0, 1 << 62),
            },
        ),
    )
    def setattr(self, data: st.DataObject, changes: dict[str, Any]) -> None:
        path = self._path(data, existing=0.8)
        expect = self._expect(m_setattr, path, changes)
        self._run(expect, lambda: self.ns.setattr(path, **changes))

    @rule(
        data=st.data(),
        name=st.sampled_from(["user.a", "user.a", "user.b", "security.s"]),
        value=st.sampled_from([None, b"", b"v", bytes(range(256))]),
    )
    def setxattr(self, data: st.DataObject, name: str, value: bytes | None) -> None:
        path = self._path(data, existing=0.9)
        expect = self._expect(m_setxattr, path, name, value)
        fs = self.engine.fs  # type: ignore[union-attr]
        self._run(expect, lambda: fs.set_xattr(self.ns.lookup(path).id, name, value))

    @rule(data=st.data(), noreplace=st.booleans())
    def rename(self, data: st.DataObject, noreplace: bool) -> None:
        src = self._path(data, existing=0.8)
        dst = self._path(data, existing=0.5)
        expect = self._expect(m_rename, src, dst, noreplace)
        self._run(expect, lambda: self.ns.rename(src, dst, noreplace=noreplace))

    @rule(
        data=st.data(),
        values=st.dictionaries(
            st.sampled_from(["read_type", "ttl"]), st.sampled_from(["NO_CACHE", "5"]), min_size=1
        ),
        unset=st.booleans(),
    )
    def pathconf(self, data: st.DataObject, values: dict[str, str], unset: bool) -> None:
        """Sets or unsets per-path defaults (kept by path string: the path need not exist)."""
        prefix = self._path(data, existing=0.5)
        values = {k: v for k, v in values.items() if (k == "ttl") == (v == "5")} or {"ttl": "5"}
        conf = self.engine.fs.pathconf  # type: ignore[union-attr]
        if unset:
            keys = sorted(values)
            self._run(
                self._expect(m_pathconf_unset, prefix, keys), lambda: conf.unset(prefix, keys)
            )
        else:
            self._run(
                self._expect(m_pathconf_set, prefix, values), lambda: conf.set(prefix, values)
            )

    @rule(data=st.data())
    def link(self, data: st.DataObject) -> None:
        src = self._path(data, existing=0.8)
        dst = self._path(data, existing=0.4)
        expect = self._expect(m_link, src, dst)
        self._run(expect, lambda: self.engine.fs.links.link(self.ns.lookup(src), dst))  # type: ignore[union-attr]

    @rule(data=st.data(), recursive=st.booleans())
    def delete(self, data: st.DataObject, recursive: bool) -> None:
        path = self._path(data, existing=0.7)
        expect = self._expect(m_delete, path, recursive)
        self._run(expect, lambda: self.ns.delete(path, recursive=recursive))

    @rule(data=st.data(), close=st.booleans())
    def unlink_while_open(self, data: st.DataObject, close: bool) -> None:
        """A file unlinked while open lives on as an orphan (engine/openfiles.py) until its
        handle closes (``close``) or, as no handle survives one, a restart or crash."""
        path = self._path(data, existing=0.9)
        if path not in self.model or self.model[path].kind != "file":
            return
        ino = self.ns.lookup(path).id
        self.ns.open_files.opened(ino)
        self._run(self._expect(m_delete, path, False), lambda: self.ns.delete(path))
        if close:
            self._run(self.model, lambda: openfiles.released(self.ns, None, ino))

    @rule(
        data=st.data(),
        bad=st.sampled_from(["x" * (NAME_MAX + 1), "\u00e9" * 128, "nul\0", "\udcc3\udca9"]),
        op=st.sampled_from(["create", "mkdir", "mkdir-p", "symlink", "rename"]),
    )
    def invalid_name(self, data: st.DataObject, bad: str, op: str) -> None:
        parent = self._path(data, existing=0.7)
        path = join(parent, bad)
        ns = self.ns
        if op == "create":
            expect, call = self._expect(m_create, path, 0o644, 0), lambda: ns.create(path)
        elif op == "mkdir":
            expect, call = self._expect(m_mkdir, path, 0o755, 0, False), lambda: ns.mkdir(path)
        elif op == "mkdir-p":
            # The bad name comes after directories mkdir -p would create first.
            deep = join(join(join(parent, "n"), bad), "z")
            expect = self._expect(m_mkdir, deep, 0o755, 0, True)
            call = lambda: ns.mkdir(deep, parents=True)  # noqa: E731
        elif op == "symlink":
            expect, call = self._expect(m_symlink, path, "t", 0), lambda: ns.symlink(path, "t")
        else:
            expect = self._expect(m_rename, parent, path, False)
            call = lambda: ns.rename(parent, path)  # noqa: E731
        assert isinstance(expect, Refused), f"the model accepted the name {bad!r}"
        self._run(expect, call)

    @rule()
    def sync(self) -> None:
        """fsync or fsyncdir through the mount: everything acknowledged so far made durable."""
        assert self.engine is not None
        self.engine.fs.make_durable()
        now = self.storage.op_count
        self.history = [s._replace(durable=min(s.durable, now)) for s in self.history]

    # -- journal housekeeping -----------------------------------------------------------------

    def reopen(self) -> Engine:
        return self._open(self.storage, live=True)

    def after_clean_restart(self, before: str, final_checkpoint: bool) -> None:
        assert self.engine is not None
        self._check_recovered(self.engine, [self.model])

    # -- crashes ------------------------------------------------------------------------------

    def _interesting_cuts(self) -> tuple[list[int], list[int]]:
        """Cuts right after name operations and directory fsyncs (the middle of a checkpoint, a
        segment rotation, an update of `seen`, the repair of a torn tail), and cuts right after
        writes, before their fsync (where a record can be torn)."""
        names, writes = [], []
        for i, op in enumerate(self.storage.log):
            if type(op) in (Create, Rename, Unlink, FsyncDir):
                names.append(i + 1)
            elif type(op) is Write:
                writes.append(i + 1)
        return names, writes

    def _candidates(self, cut: int, kept_all: bool = True) -> list[Model]:
        """The models a crash at ``cut`` may recover: from the last operation acknowledged (if
        the crash kept everything written: nothing acknowledged is lost to a kill -9) or made
        durable (any crash) by then, to the last one issued."""
        if kept_all:
            acked = max(i for i, s in enumerate(self.history) if s.acked <= cut)
        else:
            acked = max(i for i, s in enumerate(self.history) if s.durable <= cut)
        issued = max([acked] + [i for i, s in enumerate(self.history) if s.issued < cut])
        return [s.model for s in self.history[acked : issued + 1]]

    def _check_recovered(self, engine: Engine, candidates: list[Model]) -> Model:
        state = engine.state
        # fsck's checks are the invariants, and what an operator runs after a crash.
        assert_fsck_clean(state)
        assert not state.orphans, "a file unlinked while open outlived a restart"
        assert state.last_seq == engine.journal.last_seq
        got = dump(state)
        for model in reversed(candidates):
            if got == model:
                return model
        closest = min(candidates, key=lambda m: len(set(m.items()) ^ set(got.items())))
        raise AssertionError(
            "recovered namespace matches no model between the last acknowledged and the last"
            f" issued operation:\n  recovered: {sorted(got.items())}\n  closest:   "
            f"{sorted(closest.items())}"
        )

    def _explore(self, data: st.DataObject, cuts: list[int], per_cut: int) -> None:
        """Recovers from many crash states and checks each; the machine continues from one."""
        # A seed, not st.randoms(): how many values sample_crashes asks for depends on the log.
        rng = random.Random(data.draw(st.integers(0, SPAN)))
        survivors: list[tuple[SimStorage, Engine, Model]] = []
        steady: list[tuple[SimStorage, Engine, Model]] = []
        for cut in cuts:
            pending = len(self.storage.pending_at(cut))
            for crash in self.storage.sample_crashes(cut, rng, per_cut):
                kept_all = crash.prefix == pending and crash.tear is None and crash.scatter is None
                candidates = self._candidates(cut, kept_all)
                survivors.append(self._recover(crash, candidates))
                if cut == cuts[-1] and crash.tear is None and crash.scatter is None:
                    if crash.prefix in (0, pending):
                        steady.append(survivors[-1])
                CRASH_STATES[self.live_writer] += 1
                if self.interval:
                    INTERVAL_STATES[0] += 1
                    got = survivors[-1][2]
                    INTERVAL_STATES[1] += all(m is not got for m in self._candidates(cut))
        # With a commit interval the batches a caller's entries were written in (and so the
        # prefixes a crash keeps) vary from run to run; the run goes on from a crash at the end
        # that kept all or nothing unsynced: its state is the same in every run.
        storage, engine, model = _picked(data, steady if self.interval else survivors, 1, 1)[0]
        self._stop_writer()
        self.explored += 1
        if self.writer != "inline":
            # Checked inline; the run goes on with a group-commit writer (the reopening is part
            # of this storage's log, so later crashes cover it too). After every third crash the
            # writer process gives way to the thread: each process start costs ~40 ms of CPU.
            engine.journal.close()
            writer = "thread" if self.writer == "process" and self.explored % 3 == 0 else ""
            engine = self._open(storage, live=True, writer=writer)
        self.storage, self.engine, self.model = storage, engine, model
        self._restart_history()

    def _recover(self, crash: Crash, candidates: list[Model]) -> tuple[SimStorage, Engine, Model]:
        image = self.storage.crash_image(crash)
        storage = SimStorage(image)
        try:
            engine = self._open(storage)
        except Exception as exc:
            raise AssertionError(f"recovery from {crash} failed: {exc}") from exc
        model = self._check_recovered(engine, candidates)
        first = digest(engine.state)
        # Replay is deterministic: the same disk recovers to the same state, timestamps and all.
        again = self._open(SimStorage(image))
        assert digest(again.state) == first, f"two recoveries of {crash} differ"
        # Recovery leaves the disk consistent: crashing right after it loses nothing.
        after = storage.crashed(storage.op_count, 0)
        assert digest(self._open(after).state) == first, f"recovery from {crash} is not durable"
        return storage, engine, model

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        end = self.storage.op_count
        names, writes = self._interesting_cuts()
        cuts = {end}
        cuts.update(_scaled(data, 0, end, 2, 5))
        for interesting, least, most in ((names, 1, 3), (writes, 2, 6)):
            if interesting:
                cuts.update(_picked(data, interesting, least, most))
        self._explore(data, sorted(cuts), per_cut=12)

    @rule(data=st.data(), restart=st.booleans())
    def crash_in_housekeeping(self, data: st.DataObject, restart: bool) -> None:
        """Crashes inside a checkpoint (rotation, checkpoint file, garbage collection) or a
        clean restart (final checkpoint, reopening)."""
        assert self.engine is not None
        before = self.storage.op_count
        if restart:
            self.clean_restart(data.draw(st.booleans()))
        else:
            self.engine.checkpoint()
        end = self.storage.op_count
        cuts = {end, *_scaled(data, before, end, 3, 8)}
        self._explore(data, sorted(cuts), per_cut=6)

    @rule(data=st.data())
    def crash_in_last_operation(self, data: st.DataObject) -> None:
        """Crashes anywhere inside the most recent operation that wrote something."""
        start = self.history[-1].issued if len(self.history) > 1 else 0
        end = self.storage.op_count
        cuts = {end, *_scaled(data, max(start, 0), end, 2, 6)}
        self._explore(data, sorted(cuts), per_cut=12)

    @rule(data=st.data(), after=st.integers(0, 3))
    def failing_fsync(self, data: st.DataObject, after: int) -> None:
        """An fsync fails: the operation waiting for it must not be acknowledged, the engine
        stops, and whatever the disk kept is recovered from."""
        storage = self.storage
        storage.fail_fsync_after(after)
        while not storage.failures:
            path = next(p for p in (f"/f{k}" for k in range(1000)) if p not in self.model)
            expect = m_create(self.model, path, 0o644, 0)
            before = storage.op_count
            acked = NEVER
            try:
                self.ns.create(path)
                acked = storage.op_count
                if self.interval:  # nothing syncs it otherwise, for up to the interval
                    self.engine.fs.make_durable()  # type: ignore[union-attr]
            except JournalFailed:
                assert storage.failures and self.fatal, "fsync failed but on_fatal never ran"
                # Acknowledged (a commit interval), it may be lost; else it never was.
                self.history.append(Step(before, acked, expect, NEVER))
                if acked != NEVER:
                    self.model = expect
                break
            # Returning normally is right only if the operation was durable before the failing
            # fsync (one of an automatic checkpoint's, which the next one retries).
            self.history.append(Step(before, storage.op_count, expect, storage.op_count))
            self.model = expect
        self.fatal.clear()
        end = storage.op_count
        self._explore(data, sorted({end, *_scaled(data, 0, end, 1, 1)}), per_cut=6)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        if self.engine is not None:
            assert not self.fatal, f"the journal failed: {self.fatal}"
            assert dump(self.engine.state) == self.model

    @invariant()
    def fsck_is_clean(self) -> None:
        if self.engine is not None:
            assert_fsck_clean(self.engine)


CrashMachine.TestCase.settings = crash_settings(280)


def test_crash_statemachine(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    before = dict(CRASH_STATES)
    examples = dict(EXAMPLES)
    spawns = SPAWNS[0]
    interval = list(INTERVAL_STATES)
    # Every torn tail repaired logs a warning: thousands of expected lines, not news.
    journal_log = logging.getLogger("journal")
    level = journal_log.level
    journal_log.setLevel(logging.ERROR)
    try:
        run_state_machine_as_test(CrashMachine, settings=CrashMachine.TestCase.settings)
    finally:
        journal_log.setLevel(level)
    by_writer = {w: CRASH_STATES[w] - before[w] for w in WRITERS}
    explored = sum(by_writer.values())
    interval_states, interval_lost = (
        INTERVAL_STATES[0] - interval[0],
        INTERVAL_STATES[1] - interval[1],
    )
    with capsys.disabled():
        print(
            f"\ncrash state machine: {explored} crash states recovered and checked"
            f" in {time.monotonic() - start:.1f}s; by the live journal's writer: "
            + ", ".join(f"{w} {n}" for w, n in by_writer.items())
            + f"; {SPAWNS[0] - spawns} writer processes started; examples by drawn writer: "
            + ", ".join(f"{w} {EXAMPLES[w] - examples[w]}" for w in WRITERS)
            + f"; with a commit interval: {interval_states}, of which {interval_lost} went"
            " back past an acknowledged operation (a power loss before its sync)"
        )
    assert explored >= MIN_CRASH_STATES, f"only {explored} crash states explored"
    assert all(by_writer.values()), f"a writer was never crash-simulated: {by_writer}"
    assert interval_lost, "no crash ever lost an operation acknowledged but not yet durable"

"""The crash state machine (tests/recovery/test_crash_statemachine.py) is a function of its
drawn steps: hypothesis replays a failing example by its draws to shrink it, and an example
whose storage log came out different on replay was reported as Flaky, never printed.

What made the log vary from run to run: an operation that appends several entries before its
one wait (mkdir -p; the orphans released at start) handed them to a group-commit writer one by
one, and the writer (thread or process) took them in as many batches as it happened to wake
for: one log write and fsync in one run, two or three in the next. Those entries now reach the
writer in one hand-off (``CommitGate.batched``), so a caller that appends alone writes the same
log in every run, with every writer.

What made the recovered states vary: the bytes of the log. Every entry holds its wall-clock
time, and many end with it; a crash that tore such a record's last byte and filled it with
zeros left the record whole when that time ended in 0x00 (in one run of 256), else lost it:
the state recovered, and the steps the machine went on with, followed the clock. A torn write
now always loses its last byte (recovery/crashdisk.py).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, run_state_machine_as_test

from engine import openfiles
from engine.engine import Engine
from journal.journal import JournalOptions
from recovery.crashsim import Crash, Op, SimStorage, Write
from tests.models.housekeeping import quiet_logs
from tests.recovery.test_crash_statemachine import START_DRAWS, CrashMachine

GROUP_WRITERS = ("thread", "process")


def _engine(storage: SimStorage, writer: str, durability: str = "every_op") -> Engine:
    storage.serves_writer_process = writer == "process"
    options = JournalOptions(
        group_commit=True, writer=writer, flush_window_ms=0, preallocate=0,
        checkpoint_every=0, segment_size=1 << 30, durability=durability,
    )  # fmt: skip
    return Engine(storage, options, on_fatal=lambda exc: None)


def _log_writes(storage: SimStorage) -> int:
    return sum(type(op) is Write for op in storage.log)


# How long the first entry of an operation waits for the writer to start writing it: the old
# hand-off (entry by entry) then always splits the operation's entries into several writes.
HEAD_START_S = 1.0


@contextmanager
def _writer_woken_first(engine: Engine, storage: SimStorage) -> Iterator[None]:
    """The operation inside has its first entry committed, then waits (under the gate's lock,
    up to HEAD_START_S) until the writer has begun a write: handed over one by one, that write
    holds the first entry only. Held until the wait, the entries give the writer nothing to
    write meanwhile, so the wait runs out, and the outcome never depends on it."""
    reached = threading.Event()
    first = [True]

    def observe(entry: object) -> None:
        if first[0]:
            first[0] = False
            reached.wait(HEAD_START_S)

    storage.before_op = lambda index: reached.set()
    engine.gate.observers.append(observe)
    try:
        yield
    finally:
        engine.gate.observers.remove(observe)
        storage.before_op = None


@pytest.mark.parametrize("durability", ["every_op", "commit_interval"])
@pytest.mark.parametrize("writer", GROUP_WRITERS)
def test_mkdir_p_is_one_log_write_with_a_group_commit_writer(writer: str, durability: str) -> None:
    storage = SimStorage()
    engine = _engine(storage, writer, durability)
    try:
        engine.ns.mkdir("/warm")  # the log's first segment and its `seen` marker
        before = _log_writes(storage)
        with _writer_woken_first(engine, storage):
            engine.ns.mkdir("/p/a/b/c", 0o755, 0, 0, parents=True)
        writes = _log_writes(storage) - before
        assert engine.ns.lookup("/p/a/b/c").kind == "dir"
    finally:
        engine.close()
    assert writes == 1, f"mkdir -p of four directories took {writes} log writes"


@pytest.mark.parametrize("writer", GROUP_WRITERS)
def test_orphans_released_together_are_one_log_write(writer: str) -> None:
    """``openfiles.release`` of several orphans at once (as a start releases those a stop
    left) appends an OrphanReleased for each before its one wait."""
    storage = SimStorage()
    engine = _engine(storage, writer)
    try:
        inos = []
        for i in range(4):
            inos.append(engine.ns.create(f"/f{i}").id)
            engine.ns.open_files.opened(inos[-1])
            engine.ns.delete(f"/f{i}")  # open: an orphan until its handle closes
            engine.ns.open_files.released(inos[-1])  # closed, not yet let go
        assert len(engine.state.orphans) == 4
        before = _log_writes(storage)
        with _writer_woken_first(engine, storage):
            openfiles.release(engine.ns, None, inos)
        writes = _log_writes(storage) - before
        assert not engine.state.orphans
    finally:
        engine.close()
    assert writes == 1, f"the 4 OrphanReleased entries took {writes} log writes"


# A checkpoint's name holds the CRC of its bytes, which hold the entries' wall-clock times: the
# one part of the log that differs from run to run, harmlessly (two checkpoints at one sequence
# number hold the same state, whichever of them sorts last).
_CHECKPOINT_CRC = re.compile(r"(checkpoint-\d{20})-[0-9a-f]{8}\.sqlite")


def _noted(op: Op) -> object:
    """``op`` as the trace notes it: a write by its length, a checkpoint without its CRC."""
    if type(op) is Write:
        return ("Write", op.ino, op.offset, len(op.data))
    fields = [_CHECKPOINT_CRC.sub(r"\1-CRC.sqlite", v) if isinstance(v, str) else v for v in op]
    return (type(op).__name__, *fields)


class _TracedMachine(CrashMachine):
    """The machine, noting the storage log (each operation; a write by its length) at each
    crash exploration of each example: two runs of the same draws must note the same."""

    traces: list[list[Any]] = []

    def __init__(self) -> None:
        super().__init__()
        self.trace: list[Any] = []
        self.traces.append(self.trace)

    # CrashMachine.start's draws, with a group-commit writer only: the inline one writes at
    # each wait by construction.
    @initialize(**{**START_DRAWS, "writer": st.sampled_from(GROUP_WRITERS)})  # type: ignore[call-overload]
    def start(self, **drawn: Any) -> None:
        super().start(**drawn)

    def _explore(self, data: st.DataObject, cuts: list[int], per_cut: int) -> None:
        log = [_noted(op) for op in self.storage.log]
        self.trace.append((self.live_writer, cuts, log))
        super()._explore(data, cuts, per_cut)


def _derandomized(machine: type[CrashMachine], examples: int) -> None:
    """``examples`` examples of ``machine``, the same ones at every call."""
    run_state_machine_as_test(
        machine,
        settings=settings(
            CrashMachine.TestCase.settings,
            max_examples=examples,
            derandomize=True,
            phases=[Phase.generate],
        ),
    )


def _traces(examples: int) -> list[list[Any]]:
    _TracedMachine.traces = []
    _derandomized(_TracedMachine, examples)
    return _TracedMachine.traces


@pytest.fixture
def quiet() -> Iterator[None]:
    # Every torn tail repaired logs a warning: hundreds of expected lines.
    with quiet_logs("journal", "engine"):
        yield


def test_the_crash_machine_writes_the_same_logs_for_the_same_draws(quiet: None) -> None:
    first = _traces(10)
    again = _traces(10)
    assert len(first) == len(again)
    for i, (one, other) in enumerate(zip(first, again, strict=True)):
        assert one == other, f"example {i}: the storage logs differ between two runs"
    writers = {writer for trace in first for writer, _cuts, _log in trace}
    assert writers >= {"process", "thread"}, f"explored crashes only with {writers}"


class _RecoveryNotes(CrashMachine):
    """The machine, every writer included, noting each crash state it recovers: the crash, how
    many operations the recovery wrote, and the namespace it came back to."""

    notes: list[list[tuple[Crash, int, dict[str, Any]]]] = []

    def __init__(self) -> None:
        super().__init__()
        self.note: list[tuple[Crash, int, dict[str, Any]]] = []
        self.notes.append(self.note)

    def _recover(self, crash: Crash, candidates: list[Any]) -> tuple[SimStorage, Engine, Any]:
        storage, engine, model = super()._recover(crash, candidates)
        self.note.append((crash, len(storage.log), dict(model)))
        return storage, engine, model


def _recoveries(examples: int) -> list[list[tuple[Crash, int, dict[str, Any]]]]:
    _RecoveryNotes.notes = []
    _derandomized(_RecoveryNotes, examples)
    return _RecoveryNotes.notes


def test_the_crash_machine_recovers_the_same_states_whatever_the_clock(
    quiet: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same draws twice, the wall clock's last bits all zeros in one run and not in the
    other: every crash recovers the same namespace, with the same repairs."""
    real = time.time_ns
    runs = []
    for clock in (lambda: real() & ~0xFFFF, lambda: real() | 0x0101):
        with monkeypatch.context() as patched:
            patched.setattr(time, "time_ns", clock)
            runs.append(_recoveries(20))
    first, again = runs
    torn = sum(crash.tear is not None for note in first for crash, _ops, _model in note)
    assert torn > 100, f"only {torn} torn writes recovered"
    assert len(first) == len(again)
    for i, (one, other) in enumerate(zip(first, again, strict=True)):
        for k, (a, b) in enumerate(zip(one, other, strict=False)):
            # The crash, and how many operations its recovery wrote (a torn tail's repair).
            assert a == b, f"example {i}, crash state {k}: {a[:2]}, then {b[:2]}"
        assert len(one) == len(other), f"example {i}: {len(one)} crash states, then {len(other)}"

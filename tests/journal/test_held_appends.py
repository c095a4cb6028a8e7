"""Entries appended inside ``Journal.held()`` (the block storer's batches, through
``CommitGate.batched``) reach the writer process in one write when it ends (the writer thread:
in one batch). Whatever mix of appends, control messages (``data_written``, ``sync``) and waits
a program makes, in and out of holds, the log holds every entry once, in sequence order, and a
wait for a held entry returns (the gathered entries are sent then, not at the end of the
hold)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.engine import Engine
from journal import entries as E
from journal.journal import Journal, JournalOptions
from journal.storage import OsStorage

FIRST = 1000  # the chain's first directory inode

# A step outside a hold: "a" append; a list: a hold, each of its steps "a" append, "d"
# data_written (a control message), "s" sync, "w" wait for the last entry appended.
_inside = st.lists(st.sampled_from("aaadsw"), max_size=8)
_program = st.lists(st.one_of(st.just("a"), _inside), min_size=1, max_size=8)


def _engine(home: Path, durability: str, writer: str = "process") -> Engine:
    options = JournalOptions(writer=writer, checkpoint_every=0, durability=durability)
    return Engine(OsStorage(str(home)), options)


def _run(journal: Journal, program: list[str | list[str]]) -> int:
    """Appends a chain of directories, each in the one before (replay refuses them in any
    other order), as ``program`` says; how many."""
    made = 0

    def append() -> int:
        nonlocal made
        parent = FIRST + made - 1 if made else 1
        made += 1
        return journal.append(E.MkDir(FIRST + made - 1, parent, f"d{made}", 0o755, 0, 0, 1))

    for step in program:
        if step == "a":
            append()
            continue
        with journal.held():
            last = 0
            for op in step:
                if op == "a":
                    last = append()
                elif op == "d":
                    journal.data_written()
                elif op == "s":
                    journal.sync(last or None)
                elif op == "w" and last:
                    journal.wait(last)  # must return inside the hold: no deadlock
    return made


# The writer thread (GroupCommit) holds too: mkdir -p's entries, one hand-off.
@pytest.mark.parametrize(
    "writer,durability",
    [("process", "commit_interval"), ("process", "every_op"), ("thread", "every_op")],
)
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(program=_program)
def test_held_appends_reach_the_log_once_and_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    writer: str,
    durability: str,
    program: list[str | list[str]],
) -> None:
    home = tmp_path_factory.mktemp("held")
    engine = _engine(home, durability, writer)
    made: list[int] = []
    worker = threading.Thread(target=lambda: made.append(_run(engine.journal, program)))
    worker.start()
    worker.join(timeout=120)
    # (Left open if it hangs: closing would wait for the entries the hold keeps.)
    assert not worker.is_alive(), "a wait inside a hold never returned"
    try:
        engine.journal.flush()
        assert engine.journal.durable_seq == engine.journal.last_seq
    finally:
        engine.journal.close()
    again = _engine(home, durability, writer)  # replay: the chain applies only in seq order
    try:
        assert again.state.tree.count == made[0] + 1
        if made[0]:
            assert again.state.tree.find(FIRST + made[0] - 1) is not None
    finally:
        again.close(checkpoint=False)


def _write_calls() -> int:
    """This process's write system calls so far (the kernel's count: nothing mocked)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscw:"))


def _write_calls_of(home: Path, work: Callable[[Journal], None]) -> int:
    """The write system calls ``work`` makes on a fresh engine's synced journal (commit
    interval), which is synced and closed after."""
    engine = _engine(home, "commit_interval")
    journal = engine.journal
    try:
        journal.sync()
        before = _write_calls()
        work(journal)
        writes = _write_calls() - before
        journal.sync()
    finally:
        journal.close()
    return writes


def test_a_data_mark_inside_a_hold_joins_the_holds_one_pipe_write(tmp_path: Path) -> None:
    """A content commit's block mark and entries (``data_written``, BlockCached,
    ContentCommitted) cost one pipe write, not one per message: the mark is gathered like an
    entry, ahead of the entry that names its block."""

    def hold(journal: Journal) -> None:
        with journal.held():
            journal.append(E.MkDir(FIRST, 1, "d1", 0o755, 0, 0, 1))
            journal.data_written()
            journal.append(E.MkDir(FIRST + 1, FIRST, "d2", 0o755, 0, 0, 1))

    assert _write_calls_of(tmp_path, hold) == 1
    again = _engine(tmp_path, "commit_interval")
    try:
        assert again.state.tree.find(FIRST + 1) is not None
    finally:
        again.close(checkpoint=False)


def test_a_sync_asked_inside_a_hold_joins_its_one_pipe_write(tmp_path: Path) -> None:
    """The close of a small file written THROUGH: its entries and the request to sync them
    reach the writer in one write, and the wait for the sync after the hold sends nothing
    more; the entries are durable when it returns."""

    def close_through(journal: Journal) -> None:
        with journal.held():
            journal.append(E.MkDir(FIRST, 1, "d1", 0o755, 0, 0, 1))
            seq = journal.append(E.MkDir(FIRST + 1, FIRST, "d2", 0o755, 0, 0, 1))
            journal.ask_sync(seq)
        journal.sync(seq)
        assert journal.durable_seq >= seq

    assert _write_calls_of(tmp_path, close_through) == 1

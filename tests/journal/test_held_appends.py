"""Entries appended inside ``Journal.held()`` (the block storer's batches, through
``CommitGate.batched``) reach the writer process in one write when it ends. Whatever mix of
appends, control messages (``data_written``, ``sync``) and waits a program makes, in and out of
holds, the log holds every entry once, in sequence order, and a wait for a held entry returns
(the gathered entries are sent then, not at the end of the hold)."""

from __future__ import annotations

import threading
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


def _engine(home: Path, durability: str) -> Engine:
    options = JournalOptions(writer="process", checkpoint_every=0, durability=durability)
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


@pytest.mark.parametrize("durability", ["commit_interval", "every_op"])
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(program=_program)
def test_held_appends_reach_the_log_once_and_in_order(
    tmp_path_factory: pytest.TempPathFactory, durability: str, program: list[str | list[str]]
) -> None:
    home = tmp_path_factory.mktemp("held")
    engine = _engine(home, durability)
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
    again = _engine(home, durability)  # replay: the chain applies only in sequence order
    try:
        assert again.state.tree.count == made[0] + 1
        if made[0]:
            assert again.state.tree.find(FIRST + made[0] - 1) is not None
    finally:
        again.close(checkpoint=False)

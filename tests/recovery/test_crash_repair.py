"""A forced `journal repair` cut short by a crash at every point leaves whole files: running it
again finishes the job (recovery/repair.py, on the crash-simulating storage)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine.engine import Engine
from engine.snapshot import digest
from journal import entries as E
from journal.errors import JournalCorrupt
from journal.journal import JournalOptions
from recovery.crashsim import SimStorage
from recovery.repair import repair_journal
from recovery.verify import verify_journal


def _zeroed_newest_segment(sim: SimStorage, options: JournalOptions) -> str:
    """A checkpoint, an entry after it, then the newest segment zeroed; returns the digest a
    forced repair must leave (the checkpoint's state)."""
    engine = Engine(sim, options)
    engine.ns.mkdir("/a")
    engine.ns.mkdir("/a/b")
    engine.checkpoint()
    expected = digest(engine.state)
    engine.ns.mkdir("/c")
    engine.close(checkpoint=False)
    newest = "journal/" + max(n for n in sim.listdir("journal") if n.endswith(".seg"))
    f = sim.open_update(newest)
    f.write_at(bytes(sim.size(newest)), 0)
    f.fsync()
    f.close()
    return expected


def _entry_that_cannot_apply(sim: SimStorage, options: JournalOptions) -> str:
    """An entry replay cannot apply, in a log that goes on over more segments after it;
    returns the digest of the state before it."""
    engine = Engine(sim, options)
    engine.ns.mkdir("/a")
    engine.ns.mkdir("/a/b")
    expected = digest(engine.state)
    engine.journal.append(E.Delete(999, 1, "ghost", 7))  # appended, never applied
    engine.journal.flush()
    for i in range(12):
        engine.ns.mkdir(f"/d{i}")
    engine.close(checkpoint=False)
    assert len([n for n in sim.listdir("journal") if n.endswith(".seg")]) >= 3
    return expected


@pytest.mark.parametrize("damage", [_zeroed_newest_segment, _entry_that_cannot_apply])
def test_a_forced_repair_cut_short_by_a_crash_can_be_run_again(damage: Any) -> None:
    """Every crash point of a forced repair leaves whole files: running repair again finishes
    the job, and the home opens with exactly the state the repair promised."""
    sim = SimStorage()
    options = JournalOptions(group_commit=False, segment_size=200, checkpoint_every=0)
    expected = damage(sim, options)
    with pytest.raises(JournalCorrupt):
        Engine(sim, options)
    start = sim.op_count
    assert repair_journal(sim, "journal", force=True).steps
    rng = random.Random(11)
    checked = 0
    for cut in range(start, sim.op_count + 1):
        for crash in sim.sample_crashes(cut, rng, 6):
            crashed = sim.crash(crash)
            repair_journal(crashed, "journal", force=True)
            assert verify_journal(crashed, "journal").ok, crash
            engine = Engine(crashed, options)
            assert digest(engine.state) == expected, crash
            engine.ns.mkdir("/after")  # and appending goes on
            engine.close(checkpoint=False)
            assert verify_journal(crashed, "journal").ok, crash
            checked += 1
    assert checked > 10

"""A thread waiting for its entry while a trio run's task reads the writer process's acks
(the daemon: entries acknowledged on its event loop, others in worker threads) is woken when
that task takes the ack it polls for, not at the end of its poll."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.engine import Engine
from journal import commit_process
from journal.journal import JournalOptions
from journal.storage import OsStorage

CREATES = 300


def test_a_thread_waiting_beside_the_trio_ack_reader_is_woken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A poll that would outlast the test: only a wake-up ends the thread's wait.
    monkeypatch.setattr(commit_process, "THREAD_POLL_MS", 3_600_000)
    options = JournalOptions(writer="process", checkpoint_every=0)
    engine = Engine(OsStorage(str(tmp_path)), options)
    ns = engine.ns
    done: list[int] = []

    def creates() -> None:
        for n in range(CREATES):
            ns.create(f"/t/f{n}")  # waits in this thread (CommitGate.durable)
            done.append(n)

    async def main() -> None:
        with ns.gate.deferred() as first:
            ns.mkdir("/t")
        await engine.journal.wait_async(first.seq)  # starts the run's ack reader
        # Bounded only so that a hang fails the test rather than the run (not a speed check).
        with trio.move_on_after(300):
            await trio.to_thread.run_sync(creates, abandon_on_cancel=True)

    trio.run(main)
    assert len(done) == CREATES, f"a waiting thread was never woken after {len(done)} creates"
    engine.close(checkpoint=False)

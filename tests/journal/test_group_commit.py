"""Group commit with both writers: trio tasks and threads appending at once, checkpoints
rotating the log under them, and more queued than a pipe holds. Everything acknowledged is on
disk, and a restart rebuilds the same state."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

import pytest
import trio

from engine.engine import Engine
from engine.snapshot import digest
from journal import entries as E
from journal.journal import JournalOptions
from journal.storage import OsStorage

TASKS = 16
THREADS = 4
PER_WRITER = 150


def open_engine(home: Path, writer: str, durability: str = "commit_interval") -> Engine:
    options = JournalOptions(writer=writer, checkpoint_every=0, durability=durability)
    return Engine(OsStorage(str(home)), options)


@pytest.mark.parametrize(
    "writer,durability",
    [("process", "commit_interval"), ("process", "every_op"), ("thread", "commit_interval")],
)
def test_tasks_and_threads_share_commits_and_survive_a_restart(
    tmp_path: Path, writer: str, durability: str
) -> None:
    engine = open_engine(tmp_path, writer, durability)
    ns = engine.ns
    for i in range(TASKS):
        ns.mkdir(f"/task{i}")
    for i in range(THREADS):
        ns.mkdir(f"/thread{i}")
    errors: list[BaseException] = []

    def thread_writer(i: int) -> None:
        try:
            for n in range(PER_WRITER):
                ns.create(f"/thread{i}/f{n}")
                if i == 0 and n % 50 == 25:
                    engine.checkpoint()  # rotates the log while the others append
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    async def task_writer(i: int) -> None:
        for n in range(PER_WRITER):
            with ns.gate.deferred() as pending:
                ns.create(f"/task{i}/f{n}")
            await engine.journal.wait_async(pending.seq)

    async def tasks() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(TASKS):
                nursery.start_soon(task_writer, i)

    threads = [threading.Thread(target=thread_writer, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    trio.run(tasks)
    for t in threads:
        t.join()
    assert not errors, errors
    if durability == "commit_interval":
        engine.journal.sync()  # acknowledged once written; durable now
    assert engine.journal.durable_seq == engine.journal.last_seq
    live = digest(engine.state)
    engine.close(checkpoint=False)

    engine = open_engine(tmp_path, writer)
    try:
        assert digest(engine.state) == live
        for i in range(TASKS):
            assert len(engine.ns.listdir(f"/task{i}")) == PER_WRITER
        for i in range(THREADS):
            assert len(engine.ns.listdir(f"/thread{i}")) == PER_WRITER
    finally:
        engine.close(checkpoint=False)


def test_more_than_a_pipe_holds_is_queued_and_written(tmp_path: Path) -> None:
    """Appends that outrun the writer process (several MiB, nobody waiting) wait in a backlog
    rather than blocking the caller; a flush writes them all."""
    engine = open_engine(tmp_path, "process")
    journal = engine.journal
    count = 40_000
    for n in range(count):
        journal.append(E.MkDir(1000 + n, 1, f"d{n:06d}-" + "x" * 100, 0o755, 0, 0, 1))
    journal.flush()
    assert journal.durable_seq == journal.last_seq
    last = journal.last_seq
    journal.close()

    engine = open_engine(tmp_path, "process")
    try:
        assert engine.state.last_seq == last
        assert engine.state.tree.count == count + 1
    finally:
        engine.close(checkpoint=False)


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_the_flush_window_gathers_concurrent_writers_into_one_commit(
    tmp_path: Path, writer: str
) -> None:
    # A window far longer than it takes 8 threads to append: the first entry's commit waits
    # for all of them. Without the window the first would usually be committed alone.
    options = JournalOptions(writer=writer, checkpoint_every=0, flush_window_ms=300)
    engine = Engine(OsStorage(str(tmp_path)), options)
    try:
        ns = engine.ns
        ns.mkdir("/d")
        start = threading.Barrier(8)
        fsyncs = engine.journal.fsyncs

        def create(i: int) -> None:
            start.wait()
            ns.create(f"/d/f{i}")  # returns once durable

        threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ns.listdir("/d")) == 8
        assert engine.journal.fsyncs - fsyncs == 1
    finally:
        engine.close(checkpoint=False)


def test_a_checkpoint_at_once_after_open_does_not_pull_the_segment_from_under_the_child(
    tmp_path: Path,
) -> None:
    """The writer process starts slowly (a fresh interpreter); a checkpoint taken before it is
    up rotates the log and, with one checkpoint kept, deletes the segment the child was to
    continue. It used to open that segment by name, found it gone and failed: the next append
    stopped the journal. Now it is handed the open segment."""
    options = JournalOptions(keep_checkpoints=1, checkpoint_every=0)
    engine = Engine(OsStorage(str(tmp_path)), options)
    for i in range(3):
        engine.ns.create(f"/f{i}")
    engine.checkpoint()
    engine.ns.create("/g")  # the newest segment now holds an entry the next checkpoint covers
    engine.close(checkpoint=False)
    fatal: list[BaseException] = []
    engine = Engine(OsStorage(str(tmp_path)), options, on_fatal=fatal.append)
    try:
        engine.checkpoint()
        engine.ns.create("/h")
        assert not fatal, fatal
    finally:
        engine.close(checkpoint=False)
    engine = open_engine(tmp_path, "process")
    try:
        assert sorted(n.name for n in engine.ns.listdir("/")) == ["f0", "f1", "f2", "g", "h"]
    finally:
        engine.close(checkpoint=False)


@pytest.mark.parametrize("durability", ["commit_interval", "every_op"])
def test_the_writer_process_works_when_the_parent_holds_over_1024_files(
    tmp_path: Path, durability: str
) -> None:
    """The child is handed its pipes under the parent's descriptor numbers; a daemon holding
    many files (block files, connections) hands it numbers past FD_SETSIZE, which select()
    refuses: with a flush window (or a storage served to it, as the crash simulator's) the
    journal then failed at its first batch ("filedescriptor out of range in select()")."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE's hard limit {hard} is under {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    held: list[int] = []
    engine = None
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        held.append(null)
        while held[-1] < 1100:  # the lowest free numbers taken: the journal's pipes come after
            held.append(os.dup(null))
        options = JournalOptions(
            writer="process", checkpoint_every=0, durability=durability, flush_window_ms=1.0
        )
        fatal: list[BaseException] = []  # (the default ends the process)
        engine = Engine(OsStorage(str(tmp_path)), options, on_fatal=fatal.append)
        for n in range(20):
            engine.ns.mkdir(f"/d{n}")
        engine.fs.make_durable()
        assert fatal == []
        before = digest(engine.ns.state)
        engine.close()
        engine = None
        again = Engine(OsStorage(str(tmp_path)), options, on_fatal=fatal.append)
        try:
            assert digest(again.ns.state) == before
        finally:
            again.close()
    finally:
        if engine is not None:
            engine.close()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

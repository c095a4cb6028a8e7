"""The journal's writer process, crash-simulated: the real child (journal/writer_child.py, its
batching, framing, segment rotation and acks) writes the log on a SimStorage of this process,
served to it over a socket (journal/remote_storage.py), so every write and fsync it makes is in
the storage's log in its true order and every crash after any of them can be recovered from.
With journal.durability "every_op" (each batch synced before its ack) and "commit_interval"
(acknowledged once written; synced by a short interval's timer or when asked)."""

from __future__ import annotations

import errno
import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psutil
import pytest

from engine.engine import Engine
from journal.commit_process import ChildFailed
from journal.errors import JournalFailed
from journal.journal import JournalOptions
from recovery.crashsim import Crash, Fsync, SimStorage, Write
from tests.invariants import assert_fsck_clean

THREADS = 4
PER_THREAD = 60
# Small segments: the child rotates by size every few batches; checkpoints rotate too.
OPTIONS = JournalOptions(
    segment_size=700, checkpoint_every=0, keep_checkpoints=2, preallocate=256, flush_window_ms=0
)
# A short interval: the child's own timed syncs land among the writes, crash-simulated too.
INTERVAL = replace(OPTIONS, durability="commit_interval", commit_interval_ms=1.0)
OPTIONS = replace(OPTIONS, durability="every_op")
INLINE = JournalOptions(
    segment_size=700, checkpoint_every=0, keep_checkpoints=2, group_commit=False
)


@pytest.fixture(autouse=True)
def quiet_journal() -> Iterator[None]:
    # Every torn tail repaired logs a warning: hundreds of expected lines here.
    journal_log = logging.getLogger("journal")
    level = journal_log.level
    journal_log.setLevel(logging.ERROR)
    yield
    journal_log.setLevel(level)


def served() -> SimStorage:
    storage = SimStorage()
    storage.serves_writer_process = True
    return storage


def open_live(
    storage: SimStorage, fatal: list[BaseException] | None = None, options: JournalOptions = OPTIONS
) -> Engine:
    on_fatal: Any = (fatal if fatal is not None else []).append
    return Engine(storage, options, on_fatal=on_fatal)


def assert_served_child() -> None:
    """A writer process on served storage is running (call after an acknowledged append: by
    then the child is past its exec)."""
    children = [" ".join(p.cmdline()) for p in psutil.Process().children()]
    assert any("journal.writer_child" in c and " fd:" in c for c in children), children


def live_files(engine: Engine) -> list[tuple[int, str]]:
    """(inode id, path) of every file below /t*, in id order: ids are given in commit order."""
    out = []
    for folder in engine.ns.listdir("/"):
        for child in engine.ns.listdir(f"/{folder.name}"):
            out.append((child.id, f"/{folder.name}/{child.name}"))
    return sorted(out)


@pytest.mark.parametrize("durability", ["every_op", "commit_interval"])
def test_the_writer_process_on_simulated_storage_survives_every_crash(durability: str) -> None:
    """Threads create files at once (batches of several records), one of them checkpoints now
    and then (the parent creates a segment the child moves to) and syncs (as fsync does) while
    the child rotates by size; every crash state of chosen cuts recovers a prefix of the log
    holding every file whose create had returned before the cut (every_op, or a crash that
    kept everything written: a kill -9), or had returned before a sync that returned before the
    cut (any crash with a commit interval)."""
    interval = durability == "commit_interval"
    storage = served()
    engine = open_live(storage, options=INTERVAL if interval else OPTIONS)
    ns = engine.ns
    for i in range(THREADS):
        ns.mkdir(f"/t{i}")
    assert_served_child()
    acked: list[tuple[int, str]] = []  # (op_count when the create returned, path)
    synced: list[tuple[int, set[str]]] = []  # (op_count when a sync returned, paths it covers)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        try:
            for n in range(PER_THREAD):
                path = f"/t{i}/f{n}"
                ns.create(path)
                with lock:
                    acked.append((storage.op_count, path))
                if i == 0 and n % 20 == 10:
                    engine.checkpoint()
                if i == 1 and n % 15 == 7:
                    with lock:
                        covered = {p for _, p in acked}
                    engine.fs.make_durable()
                    synced.append((storage.op_count, covered))
        except BaseException as exc:  # reported below: a thread's failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    final = live_files(engine)
    assert len(final) == THREADS * PER_THREAD
    engine.close(checkpoint=False)
    log = storage.log
    writes = [i + 1 for i, op in enumerate(log) if type(op) is Write]
    # Writes of batches of several records (a create's record is about 70 bytes; zero fills
    # are all zeros): a crash inside one, some of its sectors on disk and others not, is where
    # the marks of write starts decide between a torn tail and damage.
    batches = [
        i + 1
        for i, op in enumerate(log)
        if type(op) is Write and len(op.data) > 150 and any(op.data)
    ]
    fsyncs = [i + 1 for i, op in enumerate(log) if type(op) is Fsync]
    assert len(fsyncs) > (5 if interval else 20), "the child's commits are not in the parent's log"
    # How many commits batch depends on the threads' timing: one is enough to cut inside.
    assert batches, "no commit took several records at once"
    rng = random.Random(14)
    cuts = _cuts(rng, len(log), writes, batches, fsyncs)
    checked = 0
    for cut in cuts:
        crashes = crashes_at(storage, cut, rng)
        must = {path for at, path in acked if at <= cut}
        durable = set().union(*(paths for at, paths in synced if at <= cut))
        pending = len(storage.pending_at(cut))
        for crash in crashes:
            kept_all = crash.prefix == pending and crash.tear is None and crash.scatter is None
            check_recovery(storage, crash, final, must if kept_all or not interval else durable)
            checked += 1
    assert checked > 500


def _cuts(
    rng: random.Random, end: int, writes: list[int], batches: list[int], fsyncs: list[int]
) -> list[int]:
    return sorted(
        {
            end,
            *rng.sample(writes, min(8, len(writes))),
            *rng.sample(batches, min(8, len(batches))),
            *rng.sample(fsyncs, 4),
        }
    )


def crashes_at(storage: SimStorage, cut: int, rng: random.Random) -> list[Crash]:
    """Every crash after operation ``cut`` when what is pending is small, and a sample (a
    checkpoint's file, torn at each of its bytes, would be tens of thousands of crashes)."""
    pending = storage.pending_at(cut)
    # sample_crashes adds writes torn sector by sector, which all_crashes does not enumerate.
    sampled = storage.sample_crashes(cut, rng, 60)
    if sum(len(op.data) for op in pending if type(op) is Write) < 400:
        return list(dict.fromkeys([*storage.all_crashes(cut, seed=cut), *sampled]))
    return sampled


def check_recovery(
    storage: SimStorage, crash: Crash, final: list[tuple[int, str]], must: set[str]
) -> None:
    recovered = Engine(SimStorage(storage.crash_image(crash)), INLINE)
    try:
        assert_fsck_clean(recovered.state)
        got = live_files(recovered)
        assert got == final[: len(got)], f"{crash}: not a prefix of the log"
        lost = must - {path for _, path in got}
        assert not lost, f"{crash}: acknowledged creates lost: {sorted(lost)[:5]}"
    finally:
        recovered.close(checkpoint=False)


@pytest.mark.parametrize("durability", ["every_op", "commit_interval"])
@pytest.mark.parametrize("fault", ["fsync", "write"])
def test_a_fault_in_the_child_stops_the_journal_as_in_the_thread_writer(
    fault: str, durability: str
) -> None:
    """An fsync (or write) the child makes fails on the parent's SimStorage: its failure ack
    reaches the parent, on_fatal runs, the entry is not made durable (with every_op: not
    acknowledged; with a commit interval the sync that would make it durable fails), nothing
    after it is acknowledged, and what the disk kept recovers."""
    interval = durability == "commit_interval"
    storage = served()
    fatal: list[BaseException] = []
    options = replace(INTERVAL, commit_interval_ms=1e9) if interval else OPTIONS
    engine = open_live(storage, fatal, options)
    for i in range(5):
        engine.ns.create(f"/ok{i}")
    engine.fs.make_durable()
    assert_served_child()
    if fault == "fsync":
        storage.fail_fsync_after(0)
    else:
        storage.fail_write_after(0, code=errno.EIO)
    with pytest.raises(JournalFailed):
        engine.ns.create("/lost")
        engine.fs.make_durable()
    assert [f.errno for f in storage.failures] == [errno.EIO]
    assert len(fatal) == 1 and isinstance(fatal[0], ChildFailed), fatal
    assert f"injected {fault} failure" in str(fatal[0])
    with pytest.raises(JournalFailed):
        engine.ns.create("/after")
    engine.journal.close()
    end = storage.op_count
    for crash in crashes_at(storage, end, random.Random(14)):
        recovered = Engine(SimStorage(storage.crash_image(crash)), INLINE)
        names = {n.name for n in recovered.ns.listdir("/")}
        assert {f"ok{i}" for i in range(5)} <= names and "after" not in names, crash
        recovered.close(checkpoint=False)


def test_a_checkpoint_after_a_restart_leaves_the_empty_newest_segment_alone() -> None:
    """A clean stop's checkpoint leaves an empty newest segment, which the next start opens;
    a checkpoint before anything is appended (another clean stop) must not create it again:
    that truncated and rewrote a segment `seen` names, and a crash in between left a home that
    no start could open."""
    storage = served()
    engine = open_live(storage)
    for i in range(3):
        engine.ns.create(f"/f{i}")
    assert_served_child()
    engine.close()  # a clean stop: final checkpoint, log rotated to an empty segment
    start = storage.op_count
    engine = open_live(storage)
    engine.close()  # and again, with nothing appended
    end = storage.op_count
    checked = 0
    rng = random.Random(14)
    for cut in range(start, end + 1):
        for crash in crashes_at(storage, cut, rng):
            recovered = Engine(SimStorage(storage.crash_image(crash)), INLINE)
            assert {n.name for n in recovered.ns.listdir("/")} == {"f0", "f1", "f2"}, crash
            recovered.close(checkpoint=False)
            checked += 1
    assert checked > 0

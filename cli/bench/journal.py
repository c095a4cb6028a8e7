"""`shoal bench journal`: durable append rate, replay rate, checkpoint cost, memory per inode.

Every figure is measured on real files in a scratch directory through the same code the engine
runs: appends are full namespace operations (validate, append, apply, wait for fsync).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.engine import Engine
from engine.snapshot import digest
from journal import entries as E
from journal.journal import Journal, JournalOptions
from journal.storage import OsStorage

FILES_PER_DIR = 1000


# An operation for a writer: given the writer's number and a counter, it makes one mutation and
# returns the sequence number to wait for.
Op = Callable[[int, int], int]


def rate_in_tasks(op: Op, wait_async: Callable[[int], Any], writers: int, seconds: float) -> float:
    """Operations per second from ``writers`` trio tasks, each waiting for its mutation to be
    durable before the next. This is how the FUSE daemon issues mutations: each request is a
    trio task that applies its operation, then awaits durability while the others go on."""
    import trio

    counts = [0] * writers

    async def work(i: int, stop: float) -> None:
        n = 0
        while time.perf_counter() < stop:
            await wait_async(op(i, n))
            n += 1
        counts[i] = n

    async def main() -> float:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(writers):
                nursery.start_soon(work, i, start + seconds)
        return time.perf_counter() - start

    elapsed = trio.run(main)
    return sum(counts) / elapsed


def rate_in_threads(op: Op, wait: Callable[[int], None], writers: int, seconds: float) -> float:
    """Operations per second from ``writers`` threads, each waiting for durability."""
    counts = [0] * writers
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(writers + 1)

    def work(i: int) -> None:
        barrier.wait()
        n = 0
        while time.perf_counter() < stop:
            wait(op(i, n))
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def journal_append_op(journal: Journal[Any], tag: int) -> Op:
    """Appends a create-file entry as the namespace would build it."""
    base = tag << 40

    def op(i: int, n: int) -> int:
        return journal.append(
            E.CreateFile(base + (n << 8) + i, 2 + i, f"f{n:07d}", 0o644, 1000, 1000, time.time_ns())
        )

    return op


def namespace_create_op(engine: Engine, tag: str, writers: int) -> Op:
    """Creates a file through the namespace: validate, append, apply; durability is the
    caller's to wait for."""
    ns = engine.ns
    dirs = [ns.mkdir(f"/{tag}-{i}").id for i in range(writers)]

    def op(i: int, n: int) -> int:
        with ns.gate.deferred() as pending:
            ns.create_in(dirs[i], f"f{n}", 0o644, 0, 0)
        return pending.seq

    return op


def fsyncs_per_second(directory: str, seconds: float) -> float:
    """The baseline: small appends each followed by fdatasync, in a plain loop, on the same
    disk. A single durable writer can do no better than this."""
    path = os.path.join(directory, "fsync-baseline")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        n = 0
        start = time.perf_counter()
        stop = start + seconds
        while time.perf_counter() < stop:
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)


def write_synthetic_log(home: str, inodes: int) -> int:
    """A log that builds ``inodes`` inodes (directories of 1000 completed files); returns its
    entry count. Written with large batches: this measures nothing, it prepares replay."""
    options = JournalOptions(group_commit=False, checkpoint_every=0, segment_size=64 << 20)
    journal: Journal[Any] = Journal(OsStorage(home), "journal", _null_codec(), options)
    journal.open()
    t = 1_700_000_000_000_000_000
    next_id = 2
    made = 1
    dir_id = 0
    n = 0
    while made < inodes:
        if made % (FILES_PER_DIR + 1) == 1:
            dir_id = next_id
            journal.append(E.MkDir(dir_id, 1, f"d{dir_id:07d}", 0o755, 1000, 1000, t))
        else:
            journal.append(
                E.CreateFile(next_id, dir_id, f"f{next_id:07d}.jpg", 0o644, 1000, 1000, t)
            )
            journal.append(E.CompleteFile(next_id, 100_000 + next_id % 20_000, 4 << 20, t + 1))
            n += 1
        n += 1
        next_id += 1
        made += 1
        t += 1000
        if n % 8192 == 0:
            journal.flush()
    journal.close()
    return n


def _null_codec() -> Any:
    from journal.journal import StateCodec

    class Nothing:
        last_seq = 0

        def apply(self, entry: Any, seq: int) -> None:
            self.last_seq = seq

        def replay_appliers(self) -> dict[int, Callable[[list[Any]], None]]:
            return {}

    return StateCodec(Nothing, lambda conn, seq: Nothing(), lambda s, conn: None)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _open(home: str, **options: Any) -> Engine:
    # Durable creates, as the figures say: "every_op" waits for each entry's sync.
    options = {"durability": "every_op", **options}
    return Engine(OsStorage(home), JournalOptions(checkpoint_every=0, **options))


def load_in_fresh_process(home: str) -> tuple[float, float, int]:
    """Start-up of the home in a new process, as a restart does it (checkpoint + log): seconds
    to open the home, and resident bytes per inode of the state it holds (a fresh process, so
    nothing else this benchmark allocated is counted)."""
    code = (
        "import gc, json, sys, time, psutil\n"
        "from engine.engine import Engine\n"
        "from journal.journal import JournalOptions\n"
        "from journal.storage import OsStorage\n"
        "import engine.snapshot, journal.checkpoint, apsw, msgpack\n"
        "p = psutil.Process(); gc.collect(); before = p.memory_info().rss\n"
        "t = time.perf_counter()\n"
        "e = Engine(OsStorage(sys.argv[1]), JournalOptions(checkpoint_every=0))\n"
        "seconds = time.perf_counter() - t\n"
        "gc.collect(); after = p.memory_info().rss\n"
        "print(json.dumps([seconds, after - before, e.state.tree.count]))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code, home], capture_output=True, text=True, check=True, cwd=root
    )
    seconds, grown, count = json.loads(out.stdout)
    return seconds, grown / count, count


def run(
    inodes: int = 1_000_000, seconds: float = 3.0, workdir: str | None = None
) -> dict[str, Any]:
    scratch = tempfile.mkdtemp(prefix="shoal-bench-", dir=workdir)
    try:
        result: dict[str, Any] = {"inodes": inodes}
        result["fsync_baseline_per_s"] = fsyncs_per_second(scratch, seconds)
        # Durable appends: each waits for its sync (the default acknowledges once written).
        options = JournalOptions(checkpoint_every=0, durability="every_op")
        journal: Journal[Any] = Journal(
            OsStorage(os.path.join(scratch, "appends")), "journal", _null_codec(), options
        )
        journal.open()
        for key, writers in (("append_1_per_s", 1), ("append_64_per_s", 64)):
            # A first, unmeasured second: the first run of a kind in a process is slower (the
            # allocator grows its arenas, the writer process's pipe and pages warm up).
            rate_in_tasks(journal_append_op(journal, 200 + writers), journal.wait_async, writers, 1)
            op = journal_append_op(journal, writers)
            result[key] = rate_in_tasks(op, journal.wait_async, writers, seconds)
        for key, writers in (("append_1_threads_per_s", 1), ("append_64_threads_per_s", 64)):
            op = journal_append_op(journal, 100 + writers)
            result[key] = rate_in_threads(op, journal.wait, writers, seconds)
        journal.close()
        result["append_64_vs_1"] = result["append_64_per_s"] / result["append_1_per_s"]
        result["append_1_vs_fsync"] = result["append_1_per_s"] / result["fsync_baseline_per_s"]

        engine = _open(os.path.join(scratch, "namespace"))
        for key, writers in (("create_1_per_s", 1), ("create_64_per_s", 64)):
            op = namespace_create_op(engine, key, writers)
            result[key] = rate_in_tasks(op, engine.journal.wait_async, writers, seconds)
        engine.close(checkpoint=False)

        home = os.path.join(scratch, "replay")
        entries = write_synthetic_log(home, inodes)
        # The log was just written: its dirty pages would be written back while replay runs,
        # on the same two cores. A restart replays a log already on disk.
        os.sync()
        # Replay and checkpoint load are start-up work: each is timed in a fresh process.
        replay_s, _per_inode, _count = load_in_fresh_process(home)
        result["replay_entries"] = entries
        result["replay_per_s"] = entries / replay_s
        engine = _open(home)
        result["state_inodes"] = engine.state.tree.count
        full_digest = digest(engine.state)
        result["checkpoint_write_s"], _ = _timed(engine.checkpoint)
        engine.close(checkpoint=False)
        del engine
        gc.collect()
        load_s, per_inode, _count = load_in_fresh_process(home)
        result["checkpoint_load_s"] = load_s
        result["bytes_per_inode"] = per_inode
        engine = _open(home)
        result["digests_match"] = digest(engine.state) == full_digest
        engine.close(checkpoint=False)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def format_table(r: dict[str, Any]) -> str:
    rows = [
        ("baseline: 100-byte append + fdatasync/s", f"{r['fsync_baseline_per_s']:,.0f}"),
        ("durable appends/s, 1 writer (trio task)", f"{r['append_1_per_s']:,.0f}"),
        ("  ratio to the baseline", f"{r['append_1_vs_fsync']:.2f}x"),
        ("durable appends/s, 64 writers (trio tasks)", f"{r['append_64_per_s']:,.0f}"),
        ("  ratio 64 : 1", f"{r['append_64_vs_1']:.1f}x"),
        ("durable appends/s, 1 writer (thread)", f"{r['append_1_threads_per_s']:,.0f}"),
        ("durable appends/s, 64 writers (threads)", f"{r['append_64_threads_per_s']:,.0f}"),
        ("durable namespace creates/s, 1 trio task", f"{r['create_1_per_s']:,.0f}"),
        ("durable namespace creates/s, 64 trio tasks", f"{r['create_64_per_s']:,.0f}"),
        (f"replay entries/s ({r['replay_entries']:,} entries)", f"{r['replay_per_s']:,.0f}"),
        (f"checkpoint write, {r['state_inodes']:,} inodes", f"{r['checkpoint_write_s']:.2f} s"),
        (f"checkpoint load, {r['state_inodes']:,} inodes", f"{r['checkpoint_load_s']:.2f} s"),
        ("resident bytes per inode", f"{r['bytes_per_inode']:.0f}"),
        ("checkpoint+tail digest == full replay digest", str(r["digests_match"])),
    ]
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


if __name__ == "__main__":
    out = run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
    print(format_table(out))
    print(json.dumps(out))

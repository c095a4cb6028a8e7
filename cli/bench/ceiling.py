"""`shoal bench read`'s hit-path figures: what any pyfuse3 file system can do on this machine,
and what Shoal does when the bytes are already in its tiers.

- The bare file system: a pyfuse3 file system that does nothing but serve the dataset's small
  files as constant bytes from memory (keep_cache, 300 s entry and
  attribute timeouts, FLUSH off, read-only), in a child process. Its first pass (every file
  LOOKUP, OPEN, READ, RELEASE) is ``ceiling_first_small``; its second (the kernel's page cache
  holds the files: only OPEN and RELEASE reach it) is ``ceiling_warm_small``. The same file
  system reading each file from the local copy (open, pread, close: the least a file system
  serving real bytes does) gives ``ceiling_pread_first_small``: what separates the two is the
  cost of bytes that are not one constant already in the CPU's cache.
- The ceiling of any cache that checks its blocks: the same, each READ also fstat-ing the
  copy, and the first READ of each file in the process reading it whole and comparing its
  CRC-32 with the one taken at the start (after that, the range asked for while the file's
  size, mtime and inode are unchanged): the rule by which Shoal checks a block of a disk
  tier after every start (engine/cache/blockcache.py). ``ceiling_checked_first_small``: what
  Shoal's pass from its tiers can reach with nothing else of its own on the hit path (no
  namespace, no permissions, no block map, no statistics).
- The ceiling of any file-backed cache: the same file system keeping a descriptor of each
  file's local copy open from its start (before the clock) and answering each READ with one
  ``os.pread`` on the event loop (the copies are in the page cache: the read never waits for
  the disk). Every cache whose blocks live in files must at least pread them; this is all it
  does. Its first pass is ``ceiling_file_first_small``.
- The ceiling of any cache fill: the same file system reading each file from the local copy
  (open, pread, close), and handing each READ's bytes to a thread that stores them in a file of
  its own on tmpfs (open, write, close) with their CRC-32, as a cache's storer at least does;
  no journal, no block map, no directory listed from a store. Its queue has the bounds of
  Shoal's storer (an offer beyond them dropped), and its process Shoal's switch interval, so
  that the thread takes the GIL from the serving loop as Shoal's storer does. Its first pass
  is ``ceiling_store_first_small``: what Shoal's cold pass over a local UFS (which stores
  every block it serves) can reach at best.
- Shoal over a local UFS holding the same files (a local store, so that the figure is the hit
  path's, not a store's): a first pass fills the tiers (``mount_local_cold_small``), the mount
  is stopped (its blocks all stored) and mounted again, so the kernel's page cache holds none
  of the files: that pass is served from the tiers (``mount_tier_small``), the next one from
  the page cache again (``mount_tier_warm_small``).

Every figure is read by the caller's reader code, the same for every system, and is the best
of ``ROUNDS`` passes (each round mounts both anew); beside files/s, the CPU time the serving
process spent per file, which other work on the machine disturbs less.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import resource
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from engine.cache.crc import crc32
from engine.cache.storer import QUEUE_BLOCKS, QUEUE_BYTES
from engine.config import default_tiers
from fuse.mountinfo import daemon_pid
from journal.switching import shorten_switch_interval


def _tree(
    files: list[tuple[str, int]],
) -> tuple[dict[tuple[int, bytes], int], dict[int, int], dict[int, str]]:
    """(parent inode, name) -> inode, inode -> size (-1: a directory), file inode -> path;
    the root is 1."""
    names: dict[tuple[int, bytes], int] = {}
    sizes = {1: -1}
    paths: dict[int, str] = {}
    for rel, size in files:
        parent = 1
        parts = rel.encode().split(b"/")
        for i, part in enumerate(parts):
            ino = names.get((parent, part))
            if ino is None:
                ino = names[(parent, part)] = len(sizes) + 1
                sizes[ino] = size if i == len(parts) - 1 else -1
            parent = ino
        paths[parent] = rel
    return names, sizes, paths


def serve(
    mountpoint: str,
    listing: str,
    source: str | None = None,
    kept: bool = False,
    store: str | None = None,
    checked: bool = False,
) -> None:
    """The bare file system over the files listed in JSON file ``listing``: [[path, size]];
    with ``source``, each file's bytes read from its copy there (open, pread, close: what any
    file system serving real bytes does at least; with ``kept``, only the pread, through a
    descriptor opened before the mount), else constant bytes; with ``store`` too, each READ's
    bytes also written into a file of that directory, named by inode, by a thread; with
    ``checked``, each file's bytes checked against their CRC-32 taken at the start (see
    above), a READ of a file that fails it answered EIO."""
    import pyfuse3
    import trio

    stored = _storer(store) if store is not None else None
    with open(listing) as f:
        files = [(p, s) for p, s in json.load(f)]
    names, sizes, paths = _tree(files)
    fds = _kept_descriptors(source, paths) if kept and source is not None else {}
    inode_of_fd: dict[int, int] = {}  # an open descriptor's inode (its stored copy's name)
    checks = _Checks(source, paths) if checked and source is not None and not kept else None
    # One constant per size: a read of a whole file slices all of one, which copies nothing.
    blobs = {size: b"x" * size for size in set(sizes.values()) if size >= 0}
    attrs = _attributes(sizes)

    class Bare(pyfuse3.Operations):
        async def getattr(self, inode: int, ctx: object = None) -> Any:
            return attrs[inode]

        async def lookup(self, parent: int, name: bytes, ctx: object = None) -> Any:
            ino = names.get((parent, name))
            if ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return attrs[ino]

        async def open(self, inode: int, flags: int, ctx: object) -> Any:
            if source is None or kept:
                return pyfuse3.FileInfo(fh=inode, keep_cache=True)
            fd = os.open(f"{source}/{paths[inode]}", os.O_RDONLY)
            inode_of_fd[fd] = inode
            return pyfuse3.FileInfo(fh=fd, keep_cache=True)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            if source is None:
                return blobs[sizes[fh]][off : off + size]
            if kept:  # page-cache-hot copies: a pread on the loop never waits for the disk
                return os.pread(fds[fh], size, off)
            if checks is not None:
                data = checks.read(fh, inode_of_fd[fh], off, size)
                if data is None:
                    raise pyfuse3.FUSEError(errno.EIO)
                return data
            data = os.pread(fh, size, off)
            if stored is not None:
                stored(inode_of_fd[fh], off, data)
            return data

        async def flush(self, fh: int) -> None:
            raise pyfuse3.FUSEError(errno.ENOSYS)  # off for the connection, as Shoal's ro mount

        async def release(self, fh: int) -> None:
            if source is not None and not kept:
                os.close(fh)

    options = set(pyfuse3.default_options)
    options.add("ro")
    options.add("fsname=shoal-bench-ceiling")
    pyfuse3.init(Bare(), mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close()


def _kept_descriptors(source: str, paths: dict[int, str]) -> dict[int, int]:
    """A descriptor of each file's copy in ``source``, by inode, opened now (before the clock)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # a descriptor per file of the dataset
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return {ino: os.open(f"{source}/{rel}", os.O_RDONLY) for ino, rel in paths.items()}


def _attributes(sizes: dict[int, int]) -> dict[int, Any]:
    """Each inode's pyfuse3 EntryAttributes, kept 300 s by the kernel (size -1: a directory)."""
    import pyfuse3

    attrs = {}
    for ino, size in sizes.items():
        a = attrs[ino] = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.entry_timeout = a.attr_timeout = 300
        a.st_mode = stat.S_IFDIR | 0o755 if size < 0 else stat.S_IFREG | 0o644
        a.st_size = max(size, 0)
        a.st_blksize = 1 << 20
    return attrs


class _Checks:
    """The checked ceiling's reads: each file's CRC-32 taken now, from its copy in ``source``
    (before the clock); a file's first read in the process reads it whole and compares, later
    ones read the range asked for while its (size, mtime, inode) stamp is unchanged, as Shoal's
    rule for a disk tier's block (engine/cache/blockcache.py)."""

    def __init__(self, source: str, paths: dict[int, str]) -> None:
        self.sums: dict[int, int] = {}
        for ino, rel in paths.items():
            with open(f"{source}/{rel}", "rb") as copy:
                self.sums[ino] = crc32(copy.read())
        self.verified: dict[int, tuple[int, int, int]] = {}

    def read(self, fd: int, ino: int, off: int, size: int) -> bytes | None:
        """``size`` bytes at ``off`` of file ``ino`` open as ``fd``; None if it fails its check."""
        st = os.fstat(fd)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self.verified.get(ino) == stamp:
            return os.pread(fd, size, off)
        whole = os.pread(fd, st.st_size, 0)
        if crc32(whole) != self.sums[ino]:
            return None
        self.verified[ino] = stamp
        return whole if off == 0 and size >= len(whole) else whole[off : off + size]


def store_dir(scratch: str) -> str:
    """Where the cache-fill ceiling of the run in ``scratch`` stores its copies (RAM, as
    Shoal's MEM tier), named after the scratch: removed with it, by name."""
    return os.path.join("/dev/shm", "shoal-bench-store-" + os.path.basename(scratch))


def _storer(store: str) -> Callable[[int, int, bytes], None]:
    """A thread storing (inode, offset, bytes) in ``store``/inode, with their CRC-32; the
    function that offers it a block. Bounded as Shoal's storer (engine/cache/storer.py): an
    offer beyond ``QUEUE_BLOCKS`` blocks or ``QUEUE_BYTES`` bytes waiting is dropped, never
    waited for. (Its process takes Shoal's switch interval: see ``serve``.)"""
    todo: queue.SimpleQueue[tuple[int, int, bytes]] = queue.SimpleQueue()
    waiting = [0, 0]  # blocks, bytes
    lock = threading.Lock()

    def offer(ino: int, off: int, data: bytes) -> None:
        with lock:
            if waiting[0] >= QUEUE_BLOCKS or waiting[1] + len(data) > QUEUE_BYTES:
                return
            waiting[0] += 1
            waiting[1] += len(data)
        todo.put((ino, off, data))

    def run() -> None:
        try:
            while True:
                ino, off, data = todo.get()
                fd = os.open(f"{store}/{ino}", os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    os.pwrite(fd, data, off)
                finally:
                    os.close(fd)
                crc32(data)
                with lock:
                    waiting[0] -= 1
                    waiting[1] -= len(data)
        except BaseException as exc:  # serving on without storing would measure another thing
            print(f"the store ceiling cannot store in {store}: {exc}", file=sys.stderr)
            os._exit(1)

    threading.Thread(target=run, name="store", daemon=True).start()
    shorten_switch_interval()  # as Shoal's daemon, whose storer thread this stands for
    return offer


@contextmanager
def bare_mount(
    scratch: str,
    files: list[tuple[str, int]],
    source: str | None = None,
    kept: bool = False,
    store: str | None = None,
    checked: bool = False,
) -> Iterator[tuple[str, int]]:
    """The bare file system mounted in ``scratch`` while inside: (mount point, the pid of the
    child process serving it); ``source``, ``kept``, ``store`` and ``checked`` as
    ``serve``'s."""
    mountpoint = os.path.join(scratch, "ceiling-mnt")
    listing = os.path.join(scratch, "ceiling-files.json")
    os.makedirs(mountpoint)
    with open(listing, "w") as f:
        json.dump(files, f)
    args = [sys.executable, "-m", "cli.bench.ceiling", mountpoint, listing]
    # In a session of its own, as `shoal mount` starts its daemon: with the kernel's autogroups
    # a session is a scheduling group, and on a busy machine a server sharing its readers'
    # group is scheduled differently from one in a group of its own. Both are placed alike.
    args += ([source] if source else []) + (["--kept"] if kept else [])
    args += ["--store", store] if store else []
    args += ["--checked"] if checked else []
    with served(args, mountpoint, "file system") as pid:
        yield mountpoint, pid


@contextmanager
def served(args: list[str], mountpoint: str, what: str) -> Iterator[int]:
    """A bare pyfuse3 server started by ``args`` in a session of its own, mounted at
    ``mountpoint`` while inside (the pid of its process); unmounted and the mount point removed
    after. Shared by the read ceiling and writeceiling.py's."""
    server = subprocess.Popen(args, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the bare pyfuse3 {what} did not mount")
            time.sleep(0.05)
        yield server.pid
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], check=False, capture_output=True)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        os.rmdir(mountpoint)


def _shoal(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"shoal {args[0]} failed: {done.stderr.strip()}")


Reader = Callable[[list[str]], tuple[float, int]]  # paths -> (seconds, bytes), every file whole
ROUNDS = 2  # each figure the best of this many passes: the machine is shared and noisy


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Passes:
    """Figures of timed passes, each the best of its rounds: files/s, MiB/s, and the CPU the
    serving process spent per file (steadier than files/s when other work shares the cores)."""

    def __init__(self, read: Reader) -> None:
        self.read = read
        self.figures: dict[str, dict[str, float]] = {}

    def measure(self, label: str, paths: list[str], server: int) -> None:
        cpu = cpu_seconds(server)
        seconds, total = self.read(paths)
        cpu_us = (cpu_seconds(server) - cpu) / len(paths) * 1e6
        got = {
            "files_per_s": len(paths) / seconds, "mib_per_s": total / seconds / (1 << 20),
            "daemon_cpu_us_per_file": cpu_us,
        }  # fmt: skip
        best = self.figures.setdefault(label, got)
        if got["files_per_s"] > best["files_per_s"]:
            best.update(files_per_s=got["files_per_s"], mib_per_s=got["mib_per_s"])
        best["daemon_cpu_us_per_file"] = min(best["daemon_cpu_us_per_file"], cpu_us)


def _daemon_pid(home: str) -> int:
    """The running daemon of ``home`` (fuse/mountinfo.py reads its pid file)."""
    pid = daemon_pid(home)
    if pid is None:
        raise RuntimeError(f"no daemon of {home} runs")
    return pid


def run(src: str, small: list[str], scratch: str, read: Reader) -> dict[str, dict[str, float]]:
    """The bare file system's passes, then Shoal's over ``src`` as a local UFS (see above):
    ``ROUNDS`` rounds, each mounting both anew; figures by label."""
    rel = [os.path.relpath(p, src) for p in small]
    files = [(r, os.path.getsize(os.path.join(src, r))) for r in rel]
    passes = _Passes(read)
    home, mnt = os.path.join(scratch, "tier-home"), os.path.join(scratch, "tier-mnt")
    os.makedirs(mnt)
    in_mount = [os.path.join(mnt, r) for r in rel]
    mount = ["mount", "--home", home, src, mnt, "-o", "ro"]
    try:
        _shoal(*mount)
        try:
            passes.measure("mount_local_cold_small", in_mount, _daemon_pid(home))
        finally:
            _shoal("umount", mnt)  # waits for every block to be stored
        for _ in range(ROUNDS):
            with bare_mount(scratch, files) as (bare, server):
                paths = [os.path.join(bare, r) for r in rel]
                passes.measure("ceiling_first_small", paths, server)
                passes.measure("ceiling_warm_small", paths, server)
            with bare_mount(scratch, files, source=src) as (bare, server):
                paths = [os.path.join(bare, r) for r in rel]
                passes.measure("ceiling_pread_first_small", paths, server)
            with bare_mount(scratch, files, source=src, checked=True) as (bare, server):
                paths = [os.path.join(bare, r) for r in rel]
                passes.measure("ceiling_checked_first_small", paths, server)
            with bare_mount(scratch, files, source=src, kept=True) as (bare, server):
                paths = [os.path.join(bare, r) for r in rel]  # src: the SSD tier's disk
                passes.measure("ceiling_file_first_small", paths, server)
            store = store_dir(scratch)  # on /dev/shm, as the MEM tier
            os.mkdir(store, 0o700)
            try:
                with bare_mount(scratch, files, source=src, store=store) as (bare, server):
                    paths = [os.path.join(bare, r) for r in rel]
                    passes.measure("ceiling_store_first_small", paths, server)
            finally:
                shutil.rmtree(store, ignore_errors=True)
            _shoal(*mount)  # a new mount: the kernel's page cache holds none of its files
            try:
                daemon = _daemon_pid(home)
                passes.measure("mount_tier_small", in_mount, daemon)
                passes.measure("mount_tier_warm_small", in_mount, daemon)
            finally:
                _shoal("umount", mnt)
    finally:
        for tier in default_tiers(home):  # its MEM tier is on /dev/shm, outside the scratch
            for path in tier.paths:
                shutil.rmtree(path, ignore_errors=True)
    return passes.figures


def ratios(result: dict[str, Any]) -> dict[str, float]:
    def ratio(mine: str, theirs: str) -> float:
        return float(result[mine]["files_per_s"] / result[theirs]["files_per_s"])

    return {
        "tier_small_vs_ceiling": ratio("mount_tier_small", "ceiling_first_small"),
        "local_cold_small_vs_ceiling": ratio("mount_local_cold_small", "ceiling_first_small"),
        "warm_small_vs_ceiling": ratio("mount_warm_small", "ceiling_warm_small"),
        "tier_warm_small_vs_ceiling": ratio("mount_tier_warm_small", "ceiling_warm_small"),
        "file_ceiling_vs_ceiling": ratio("ceiling_file_first_small", "ceiling_first_small"),
        "tier_small_vs_file_ceiling": ratio("mount_tier_small", "ceiling_file_first_small"),
        "checked_ceiling_vs_ceiling": ratio("ceiling_checked_first_small", "ceiling_first_small"),
        "tier_small_vs_checked_ceiling": ratio("mount_tier_small", "ceiling_checked_first_small"),
        "store_ceiling_vs_ceiling": ratio("ceiling_store_first_small", "ceiling_first_small"),
        "local_cold_small_vs_store_ceiling": ratio(
            "mount_local_cold_small", "ceiling_store_first_small"
        ),
    }


ROWS = [
    ("bare pyfuse3, first pass", "ceiling_first_small"),
    ("bare pyfuse3, warm", "ceiling_warm_small"),
    ("bare pyfuse3 + pread, first", "ceiling_pread_first_small"),
    ("bare pyfuse3 + pread + CRC", "ceiling_checked_first_small"),
    ("bare pyfuse3, kept fd, first", "ceiling_file_first_small"),
    ("bare pyfuse3 + pread + store", "ceiling_store_first_small"),
    ("shoal, local UFS, cold", "mount_local_cold_small"),
    ("shoal, from its tiers", "mount_tier_small"),
    ("shoal, after tiers (warm)", "mount_tier_warm_small"),
]


def table_lines(result: dict[str, Any]) -> list[str]:
    return [
        f"{label:<30} {result[key]['files_per_s']:>14,.0f}"
        f" {result[key]['daemon_cpu_us_per_file']:>12,.0f}"
        for label, key in ROWS
    ]


def chart(results: list[dict[str, Any]], path: str) -> None:
    """A PNG of the hit-path figures of one or more runs: files/s and the serving process's
    CPU per file, each system beside the bare file system measured in the same run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in ROWS if all(row[1] in result for result in results)]  # older runs
    labels = [label for label, _ in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    height = 0.8 / len(results)
    for n, result in enumerate(results):
        at = [i + n * height for i in range(len(rows))]
        for axis, unit in ((a, "files_per_s"), (b, "daemon_cpu_us_per_file")):
            values = [result[key][unit] for _, key in rows]
            bars = axis.barh(at, values, height=height, label=f"run {n + 1}")
            axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=2, fontsize=7)
    for axis, unit in ((a, "small files / s"), (b, "CPU µs per file, serving process")):
        axis.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))])
        axis.set_xlabel(unit)
        axis.invert_yaxis()
    a.set_yticklabels(labels)
    b.set_yticklabels([])
    a.legend(fontsize=7)
    fig.suptitle("the hit path against a bare pyfuse3 file system (4 reader processes)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if sys.argv[1] == "--chart":  # --chart OUT.png RESULT.json...: `bench read --json` outputs
        chart([json.load(open(f)) for f in sys.argv[3:]], sys.argv[2])
    else:
        source = sys.argv[3] if len(sys.argv) > 3 else None
        flags = sys.argv[4:]
        store = flags[flags.index("--store") + 1] if "--store" in flags else None
        kept, checked = "--kept" in flags, "--checked" in flags
        # Each of these reads the source's files its own way: one at a time, never with --kept.
        ways = [f for f, on in (("--store", store is not None), ("--checked", checked)) if on]
        if ways and (source is None or source.startswith("--") or kept or len(ways) > 1):
            sys.exit(f"{' '.join(ways)}: one of them, a source to serve from, and no --kept")
        serve(sys.argv[1], sys.argv[2], source, kept=kept, store=store, checked=checked)

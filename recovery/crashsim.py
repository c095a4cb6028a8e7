"""An in-memory ``journal.storage.Storage`` that can be crashed into any state a disk allows.

The model: files are inodes (bytes); directories map names to inodes. ``SimStorage`` keeps the
*current* image (what reads see) and records every mutation as a primitive operation in a log.
Replaying a prefix of that log on a tracker that also keeps a *durable* image and the ordered
list of operations not yet made durable gives the disk as it stood right after any operation:

* ``handle.fsync()`` makes every pending content operation (write, truncate) of its inode
  durable; ``fsync_dir(d)`` makes every pending name operation (create, rename, unlink) in ``d``
  durable. A created or renamed file therefore survives a crash only if its directory was
  fsynced, and its bytes only if the file was.
* A crash keeps the durable image plus an arbitrary prefix of the pending operations, and the
  last operation of that prefix, if it is a write, may be torn: cut at any byte, the rest of it
  zeros, garbage or absent; or scattered, some of its sectors on disk and others not, in any
  order (a write over preallocated space reaches the disk page by page).
* Directories are created once, up front, so ``makedirs`` is durable at once; files are the
  only things renamed or removed.

Use: ``op_count`` numbers the operations so far; ``crashed(cut, prefix, tear)`` (or
``crash(Crash)``) is a new ``SimStorage`` holding the disk after a crash right after operation
``cut``, with its own fresh log; ``sample_crashes`` and ``all_crashes`` give the choices for a
cut. ``fail_fsync_after``, ``fail_write_after`` and ``deny_writes`` inject faults.

Replaying from the start for every crash is deliberately naive: a test's log is a few megabytes
at most and obviously-correct matters more than fast here.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

# -- primitive operations ----------------------------------------------------------------------


class Create(NamedTuple):
    dir: str
    name: str
    ino: int


class Write(NamedTuple):
    ino: int
    offset: int
    data: bytes


class Truncate(NamedTuple):
    ino: int
    size: int


class Rename(NamedTuple):
    src_dir: str
    src_name: str
    dst_dir: str
    dst_name: str


class Unlink(NamedTuple):
    dir: str
    name: str


class Fsync(NamedTuple):
    ino: int


class FsyncDir(NamedTuple):
    dir: str


class MakeDir(NamedTuple):
    path: str


Op = Create | Write | Truncate | Rename | Unlink | Fsync | FsyncDir | MakeDir


def _dirs_of(op: Op) -> tuple[str, ...]:
    """The directories a name operation changes (none for other operations)."""
    if isinstance(op, Rename):
        return (op.src_dir, op.dst_dir)
    if isinstance(op, Create | Unlink):
        return (op.dir,)
    return ()


def _split(path: str) -> tuple[str, str]:
    if "/" in path:
        d, n = path.rsplit("/", 1)
        return d, n
    return "", path


def _parents(path: str) -> list[str]:
    """``path`` and every directory above it, root ("") excluded, outermost first."""
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# -- disk images -------------------------------------------------------------------------------


class Image:
    """Directories, their entries and inode contents. Contents are immutable ``bytes`` so a copy
    of an image shares them."""

    __slots__ = ("dirs", "entries", "data")

    def __init__(self) -> None:
        self.dirs: set[str] = {""}
        self.entries: dict[str, dict[str, int]] = {"": {}}
        self.data: dict[int, bytes] = {}

    def copy(self) -> Image:
        out = Image()
        out.dirs = set(self.dirs)
        out.entries = {d: dict(e) for d, e in self.entries.items()}
        out.data = dict(self.data)
        return out

    def apply(self, op: Op) -> None:
        if isinstance(op, Write):
            old = self.data.get(op.ino, b"")
            if op.offset > len(old):
                old += bytes(op.offset - len(old))
            self.data[op.ino] = old[: op.offset] + op.data + old[op.offset + len(op.data) :]
        elif isinstance(op, Truncate):
            old = self.data.get(op.ino, b"")
            grow = op.size - len(old)
            self.data[op.ino] = old[: op.size] if grow <= 0 else old + bytes(grow)
        elif isinstance(op, Create):
            self.entries[op.dir][op.name] = op.ino
            self.data.setdefault(op.ino, b"")
        elif isinstance(op, Rename):
            self.entries[op.dst_dir][op.dst_name] = self.entries[op.src_dir].pop(op.src_name)
        elif isinstance(op, Unlink):
            del self.entries[op.dir][op.name]
        elif isinstance(op, MakeDir):
            for p in _parents(op.path):
                self.dirs.add(p)
                self.entries.setdefault(p, {})
        else:
            raise AssertionError(f"{op!r} does not change an image")

    def collect(self) -> None:
        """Forgets inodes no name refers to (after a crash nothing else can reach them)."""
        live = {ino for e in self.entries.values() for ino in e.values()}
        self.data = {ino: b for ino, b in self.data.items() if ino in live}

    def files(self) -> dict[str, bytes]:
        """Every file's path and content."""
        out = {}
        for d, e in self.entries.items():
            for name, ino in e.items():
                out[f"{d}/{name}" if d else name] = self.data[ino]
        return out


class Tracker:
    """Replays operations keeping the current image, the durable image and what is pending."""

    def __init__(self, base: Image) -> None:
        self.current = base.copy()
        self.durable = base.copy()
        self.pending: list[Op] = []

    def do(self, op: Op) -> None:
        if isinstance(op, Fsync):
            ino = op.ino
            self._flush(lambda p: isinstance(p, Write | Truncate) and p.ino == ino)
        elif isinstance(op, FsyncDir):
            self._flush_dir(op.dir)
        elif isinstance(op, MakeDir):
            self.current.apply(op)
            self.durable.apply(op)
        else:
            self.current.apply(op)
            self.pending.append(op)

    def _flush(self, selected: Callable[[Op], bool]) -> None:
        """Applies the pending operations ``selected`` picks to the durable image, in order."""
        keep = []
        for p in self.pending:
            if selected(p):
                self.durable.apply(p)
            else:
                keep.append(p)
        self.pending = keep

    def _flush_dir(self, d: str) -> None:
        # A rename links two directories: making it durable needs the earlier operations in both,
        # so the set of directories grows until no pending rename crosses its boundary. This may
        # make more durable than a real file system must, never less consistent.
        dirs = {d}
        while True:
            grown = set(dirs)
            for p in self.pending:
                if isinstance(p, Rename) and (p.src_dir in dirs or p.dst_dir in dirs):
                    grown.update(_dirs_of(p))
            if grown == dirs:
                break
            dirs = grown
        self._flush(lambda p: not dirs.isdisjoint(_dirs_of(p)))


# -- crash choices ----------------------------------------------------------------------------

Fill = Literal["zeros", "garbage", "absent", "scattered"]
FILLS: tuple[Fill, ...] = ("zeros", "garbage", "absent")
# A torn write whose sectors reached the disk in any order: some did, others did not (the old
# bytes stay). Sectors are small here so that the tests' writes span several of them.
SCATTERED: Fill = "scattered"
SECTOR = 64


@dataclass(frozen=True, slots=True)
class Tear:
    """How the last surviving write was cut: ``keep`` bytes of it made it, the rest of its range
    holds zeros, garbage (from ``seed``) or nothing at all."""

    keep: int
    fill: Fill = "zeros"
    seed: int = 0

    def apply(self, op: Write) -> Write:
        if not 0 <= self.keep < len(op.data):
            raise ValueError(f"cannot keep {self.keep} bytes of a {len(op.data)}-byte write")
        rest = len(op.data) - self.keep
        if self.fill == "zeros":
            tail = bytes(rest)
        elif self.fill == "garbage":
            tail = random.Random(self.seed).randbytes(rest)
        else:
            tail = b""
        return Write(op.ino, op.offset, op.data[: self.keep] + tail)

    def pieces(self, op: Write) -> list[Write]:
        """What of ``op`` reached the disk: for "scattered", a random set of its sectors (at
        least one missing, ``keep`` unused); otherwise ``apply``'s one write."""
        if self.fill != SCATTERED:
            return [self.apply(op)]
        rng = random.Random(self.seed)
        count = (len(op.data) + SECTOR - 1) // SECTOR
        lost = rng.randrange(count)
        return [
            Write(op.ino, op.offset + i * SECTOR, op.data[i * SECTOR : (i + 1) * SECTOR])
            for i in range(count)
            if i != lost and rng.random() < 0.5
        ]


@dataclass(frozen=True, slots=True)
class Crash:
    """A crash right after operation ``cut``, keeping ``prefix`` of the pending operations."""

    cut: int
    prefix: int
    tear: Tear | None = None


# -- the storage --------------------------------------------------------------------------------


class SimFile:
    __slots__ = ("storage", "ino", "path", "append", "pos", "closed")

    def __init__(self, storage: SimStorage, ino: int, path: str, append: bool) -> None:
        self.storage = storage
        self.ino = ino
        self.path = path
        self.append = append
        self.pos = 0
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: I/O on a closed file")

    def write(self, data: bytes) -> None:
        self._check()
        s = self.storage
        s._fault("write", self.path)
        if self.append:
            self.pos = len(s.disk.current.data[self.ino])
        if data:
            s._record(Write(self.ino, self.pos, bytes(data)))
        self.pos += len(data)

    def write_at(self, data: bytes, offset: int) -> None:
        self._check()
        s = self.storage
        s._fault("write", self.path)
        if data:
            s._record(Write(self.ino, offset, bytes(data)))

    def fsync(self) -> None:
        self._check()
        self.storage._fault("fsync", self.path)
        self.storage._record(Fsync(self.ino))

    def truncate(self, size: int) -> None:
        self._check()
        if size < 0:
            raise OSError(errno.EINVAL, "negative size", self.path)
        self.storage._record(Truncate(self.ino, size))

    def close(self) -> None:
        self.closed = True


class SimStorage:
    """``Storage`` in memory, recording every operation since it was made (or crashed into)."""

    def __init__(self, image: Image | None = None) -> None:
        self.root = "sim:"
        self.base = image.copy() if image is not None else Image()
        self.disk = Tracker(self.base)
        self.log: list[Op] = []
        self._next_ino = max(self.base.data, default=0) + 1
        self._denied: list[str] = []
        # kind -> [successes left before failing, failures left, errno]
        self._faults: dict[str, list[int]] = {}
        self._cache: tuple[int, Tracker] | None = None
        self.failures: list[OSError] = []  # injected failures raised so far

    # -- recording ------------------------------------------------------------------------------

    @property
    def op_count(self) -> int:
        return len(self.log)

    def _record(self, op: Op) -> None:
        self.log.append(op)
        self.disk.do(op)

    # -- fault injection ----------------------------------------------------------------------

    def fail_fsync_after(self, n: int, *, times: int = 1) -> None:
        """The fsync (of a file or directory) after the next ``n`` succeeds raises EIO, without
        making anything durable, ``times`` times in a row."""
        self._faults["fsync"] = [n, times, errno.EIO]

    def fail_write_after(self, n: int, *, code: int = errno.ENOSPC, times: int = 1) -> None:
        """The file write after the next ``n`` raises OSError(code) having written nothing."""
        self._faults["write"] = [n, times, code]

    def deny_writes(self, prefix: str) -> None:
        """Creating, writing, renaming or removing anything under ``prefix`` (and
        ``check_writable`` of it) raises PermissionError, as for a directory we do not own."""
        self._denied.append(prefix)

    def _fault(self, kind: str, path: str) -> None:
        spec = self._faults.get(kind)
        if spec is None:
            return
        if spec[0] > 0:
            spec[0] -= 1
            return
        spec[1] -= 1
        if spec[1] <= 0:
            del self._faults[kind]
        failure = OSError(spec[2], f"injected {kind} failure", path)
        self.failures.append(failure)
        raise failure

    def _check_allowed(self, path: str) -> None:
        for prefix in self._denied:
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                raise PermissionError(errno.EACCES, "permission denied (injected)", path)

    # -- lookups ------------------------------------------------------------------------------

    def _ino(self, path: str) -> int:
        d, name = _split(path)
        entries = self.disk.current.entries.get(d)
        if entries is None or name not in entries:
            if path in self.disk.current.dirs:
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return entries[name]

    def _dir(self, path: str) -> dict[str, int]:
        entries = self.disk.current.entries.get(path)
        if entries is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        return entries

    # -- the Storage interface ------------------------------------------------------------------

    def makedirs(self, path: str) -> None:
        missing = [p for p in _parents(path) if p not in self.disk.current.dirs]
        if not missing:
            return
        for p in missing:
            d, name = _split(p)
            if name in self.disk.current.entries.get(d, {}):
                raise FileExistsError(errno.EEXIST, "a file is in the way", p)
        self._check_allowed(path)
        self._record(MakeDir(path))

    def listdir(self, path: str) -> list[str]:
        names = set(self._dir(path))
        prefix = path + "/" if path else ""
        for d in self.disk.current.dirs:
            if d and d.startswith(prefix) and "/" not in d[len(prefix) :]:
                names.add(d[len(prefix) :])
        return sorted(names)

    def exists(self, path: str) -> bool:
        if path in self.disk.current.dirs:
            return True
        d, name = _split(path)
        return name in self.disk.current.entries.get(d, {})

    def size(self, path: str) -> int:
        return len(self.disk.current.data[self._ino(path)])

    def read(self, path: str) -> bytes:
        return self.disk.current.data[self._ino(path)]

    def open_write(self, path: str, *, append: bool, sync_writes: bool = False) -> SimFile:
        # sync_writes is a speed hint for real disks; here durability comes from fsync only,
        # which is the stricter model (callers fsync after writes either way).
        d, name = _split(path)
        entries = self._dir(d)
        if path in self.disk.current.dirs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        self._check_allowed(path)
        ino = entries.get(name)
        if ino is None:
            ino = self._next_ino
            self._next_ino += 1
            self._record(Create(d, name, ino))
        elif not append and self.disk.current.data[ino]:
            self._record(Truncate(ino, 0))
        return SimFile(self, ino, path, append)

    def open_update(self, path: str, *, sync_writes: bool = False) -> SimFile:
        self._check_allowed(path)
        return SimFile(self, self._ino(path), path, False)

    def rename(self, src: str, dst: str) -> None:
        self._ino(src)
        sd, sn = _split(src)
        dd, dn = _split(dst)
        self._dir(dd)
        if dst in self.disk.current.dirs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", dst)
        self._check_allowed(src)
        self._check_allowed(dst)
        if self.disk.current.entries[dd].get(dn) == self.disk.current.entries[sd][sn]:
            return  # POSIX: renaming a file onto itself does nothing
        self._record(Rename(sd, sn, dd, dn))

    def unlink(self, path: str) -> None:
        self._ino(path)
        self._check_allowed(path)
        self._record(Unlink(*_split(path)))

    def fsync_dir(self, path: str) -> None:
        self._dir(path)
        self._fault("fsync", path)
        self._record(FsyncDir(path))

    def check_writable(self, path: str) -> None:
        self._dir(path)
        self._check_allowed(path)

    # -- inspection ---------------------------------------------------------------------------

    def files(self) -> dict[str, bytes]:
        """The current content of every file, by path."""
        return self.disk.current.files()

    def tracker_at(self, cut: int) -> Tracker:
        """The disk right after operation ``cut`` (0: as this storage started). Do not modify."""
        if not 0 <= cut <= len(self.log):
            raise ValueError(f"cut {cut} is outside 0..{len(self.log)}")
        if cut == len(self.log):
            return self.disk
        if self._cache is not None and self._cache[0] == cut:
            return self._cache[1]
        tracker = Tracker(self.base)
        for op in self.log[:cut]:
            tracker.do(op)
        self._cache = (cut, tracker)
        return tracker

    def pending_at(self, cut: int) -> list[Op]:
        return list(self.tracker_at(cut).pending)

    # -- crashing -----------------------------------------------------------------------------

    def crash_image(self, crash: Crash) -> Image:
        """The disk after ``crash``; ``SimStorage(image)`` opens it."""
        tracker = self.tracker_at(crash.cut)
        if not 0 <= crash.prefix <= len(tracker.pending):
            raise ValueError(f"prefix {crash.prefix} of {len(tracker.pending)} pending operations")
        survivors = list(tracker.pending[: crash.prefix])
        if crash.tear is not None:
            last = survivors[-1] if survivors else None
            if not isinstance(last, Write):
                raise ValueError(f"only a surviving write can be torn, not {last!r}")
            survivors[-1:] = crash.tear.pieces(last)
        image = tracker.durable.copy()
        for op in survivors:
            image.apply(op)
        image.collect()
        return image

    def crashed(self, cut: int, prefix: int = 0, tear: Tear | None = None) -> SimStorage:
        """A new storage holding what the disk could hold after a crash right after operation
        ``cut``: the durable state then, plus the first ``prefix`` pending operations, the last
        of them torn by ``tear``. Nothing done to it affects this storage."""
        return SimStorage(self.crash_image(Crash(cut, prefix, tear)))

    def crash(self, crash: Crash) -> SimStorage:
        return SimStorage(self.crash_image(crash))

    def all_crashes(self, cut: int, *, seed: int = 0) -> Iterator[Crash]:
        """Every crash after operation ``cut``: each prefix of the pending operations and, when a
        prefix ends with a write, that write cut at every byte with each kind of fill."""
        pending = self.tracker_at(cut).pending
        for prefix in range(len(pending) + 1):
            yield Crash(cut, prefix)
            last = pending[prefix - 1] if prefix else None
            if type(last) is Write:
                for keep in range(len(last.data)):
                    for fill in FILLS:
                        yield Crash(cut, prefix, Tear(keep, fill, seed))

    def sample_crashes(self, cut: int, rng: random.Random, n: int) -> list[Crash]:
        """Up to ``n`` distinct crashes after operation ``cut``, always including the two
        extremes (nothing pending survived; everything did), the rest drawn by ``rng`` with a
        bias towards torn writes cut near their start or end, where framing bugs live."""
        pending = self.tracker_at(cut).pending
        choices: list[Crash] = [Crash(cut, len(pending))]
        if pending:
            choices.append(Crash(cut, 0))
        writes = [i + 1 for i, op in enumerate(pending) if type(op) is Write]
        attempts = 0
        while len(choices) < n and attempts < 4 * n:
            attempts += 1
            if writes and rng.random() < 0.7:
                prefix = rng.choice(writes)
                size = len(pending[prefix - 1].data)  # type: ignore[union-attr]
                keep = rng.choice(
                    [
                        rng.randrange(size),
                        rng.randrange(min(size, 32)),
                        size - 1 - rng.randrange(min(size, 32)),
                    ]
                )
                fill = SCATTERED if size > SECTOR and rng.random() < 0.3 else rng.choice(FILLS)
                crash = Crash(cut, prefix, Tear(keep, fill, rng.randrange(1 << 30)))
            else:
                crash = Crash(cut, rng.randint(0, len(pending)))
            if crash not in choices:
                choices.append(crash)
        return choices[:n]

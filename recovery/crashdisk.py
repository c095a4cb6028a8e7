"""The disk model behind ``recovery.crashsim.SimStorage``: primitive operations, disk images,
what is durable after each operation, and the crashes a point in the log allows.

Files are inodes (bytes); directories map names to inodes. Replaying a prefix of the operation
log on a ``Tracker``, which keeps the *current* image, the *durable* image and the ordered list
of operations not yet made durable, gives the disk as it stood right after any operation:

* ``Fsync(ino)`` makes every pending content operation (write, truncate) of its inode durable;
  ``FsyncDir(d)`` makes every pending name operation (create, rename, unlink) in ``d`` durable.
  A created or renamed file therefore survives a crash only if its directory was fsynced, and
  its bytes only if the file was.
* A crash (``Crash``) keeps the durable image plus an arbitrary prefix of the pending
  operations, and the last operation of that prefix, if it is a write, may be torn (``Tear``):
  cut at any byte, the rest of it zeros, garbage or absent; or scattered, some of its sectors on
  disk and others not, in any order (a write over preallocated space reaches the disk page by
  page). A torn write always loses something: where what it did not write happens to equal
  what it would have (trailing zero bytes under a zero fill), its last byte is garbage. Or
  (``Crash.scatter``) every surviving write keeps any subset of its sectors: with no fsync
  between them, a power loss may keep a later write's pages and lose an earlier one's (the
  journal's writes between two syncs, with a commit interval).
* Directories are created once, up front (``MakeDir`` is durable at once); files are the only
  things renamed or removed.
"""

from __future__ import annotations

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


def split_path(path: str) -> tuple[str, str]:
    if "/" in path:
        d, n = path.rsplit("/", 1)
        return d, n
    return "", path


def parents_of(path: str) -> list[str]:
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
            for p in parents_of(op.path):
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
    scatter: int | None = None  # a seed: each surviving write keeps a subset of its sectors


def crash_image(tracker: Tracker, crash: Crash) -> Image:
    """The disk after ``crash``, given the tracker at ``crash.cut``."""
    if not 0 <= crash.prefix <= len(tracker.pending):
        raise ValueError(f"prefix {crash.prefix} of {len(tracker.pending)} pending operations")
    survivors = list(tracker.pending[: crash.prefix])
    torn: Write | None = None
    pieces: list[Write] = []
    if crash.tear is not None:
        last = survivors.pop() if survivors else None
        if not isinstance(last, Write):
            raise ValueError(f"only a surviving write can be torn, not {last!r}")
        torn, pieces = last, crash.tear.pieces(last)
    if crash.scatter is not None:  # never with a tear: the strategies draw one or the other
        survivors = _scattered(survivors, random.Random(crash.scatter))
    image = tracker.durable.copy()
    for op in survivors:
        image.apply(op)
    if torn is not None:
        before = image.data.get(torn.ino, b"")
        for op in pieces:
            image.apply(op)
        _torn_for_sure(image, torn, pieces, before)
    image.collect()
    return image


def _torn_for_sure(image: Image, torn: Write, pieces: list[Write], before: bytes) -> None:
    """Makes a tear visible at both ends whatever the write's bytes: its last byte garbage if
    the tear left every byte of it in place, and the first byte it kept changed if it left the
    file as it was (``before``, the file ahead of the tear).

    Whether the bytes a tear did not write equal those it would have, or the bytes it kept
    equal the old ones, depends on their values: many journal records end with their entry's
    wall-clock time, so a zero fill cutting such a record's last byte left it whole in one run
    of 256 (the time's last byte 0); a record whose first kept bytes were zeros (its checksum's
    first byte) over a segment's preallocated zeros left no trace, and replay found a clean end
    instead of a torn tail. The crash machines go on from what a crash recovered: their next
    steps, and the draws hypothesis replays them by, followed the clock. The whole write
    surviving and none of it surviving are crashes of their own (``Crash(cut, prefix)`` and
    ``Crash(cut, prefix - 1)``)."""
    end = torn.offset + len(torn.data)
    if image.data.get(torn.ino, b"")[torn.offset : end] == torn.data:
        _flip(image, torn.ino, end - 1)
    kept = next((p for p in pieces if p.data), None)
    if kept is not None and image.data.get(torn.ino, b"") == before:
        _flip(image, torn.ino, kept.offset)


def _flip(image: Image, ino: int, offset: int) -> None:
    held = image.data[ino]
    image.data[ino] = held[:offset] + bytes([held[offset] ^ 0xFF]) + held[offset + 1 :]


def _scattered(ops: list[Op], rng: random.Random) -> list[Op]:
    """``ops`` with each write reduced to a random subset of its sectors (or left whole)."""
    out: list[Op] = []
    for op in ops:
        if type(op) is not Write or rng.random() < 0.3:
            out.append(op)
            continue
        for i in range(0, len(op.data), SECTOR):
            if rng.random() < 0.5:
                out.append(Write(op.ino, op.offset + i, op.data[i : i + SECTOR]))
    return out


def all_crashes(pending: list[Op], cut: int, seed: int) -> Iterator[Crash]:
    """Every crash after operation ``cut``, whose pending operations are ``pending``: each
    prefix of them and, when a prefix ends with a write, that write cut at every byte with each
    kind of fill."""
    for prefix in range(len(pending) + 1):
        yield Crash(cut, prefix)
        last = pending[prefix - 1] if prefix else None
        if type(last) is Write:
            for keep in range(len(last.data)):
                for fill in FILLS:
                    yield Crash(cut, prefix, Tear(keep, fill, seed))


def sample_crashes(pending: list[Op], cut: int, rng: random.Random, n: int) -> list[Crash]:
    """Up to ``n`` distinct crashes after operation ``cut``, always including the two extremes
    (nothing pending survived; everything did), the rest drawn by ``rng`` with a bias towards
    torn writes cut near their start or end, where framing bugs live."""
    choices: list[Crash] = [Crash(cut, len(pending))]
    if pending:
        choices.append(Crash(cut, 0))
    writes = [i + 1 for i, op in enumerate(pending) if type(op) is Write]
    attempts = 0
    while len(choices) < n and attempts < 4 * n:
        attempts += 1
        if len(writes) > 1 and rng.random() < 0.15:
            # Several writes not yet synced: a power loss keeps any of their sectors.
            prefix = rng.choice(writes[1:])
            crash = Crash(cut, prefix, None, rng.randrange(1 << 30))
        elif writes and rng.random() < 0.7:
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

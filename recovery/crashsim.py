"""An in-memory ``journal.storage.Storage`` that can be crashed into any state a disk allows.

``SimStorage`` keeps the *current* image (what reads see) and records every mutation as a
primitive operation in a log; ``recovery.crashdisk`` says what of that log is durable after each
operation and which disks a crash may leave (its docstring has the model).

Use: ``op_count`` numbers the operations so far; ``crashed(cut, prefix, tear)`` (or
``crash(Crash)``) is a new ``SimStorage`` holding the disk after a crash right after operation
``cut``, with its own fresh log; ``sample_crashes`` and ``all_crashes`` give the choices for a
cut. ``fail_fsync_after``, ``fail_write_after`` and ``deny_writes`` inject faults. ``before_op``, if
set, is called with each operation's index just before it is recorded: a test whose engine also
keeps real files (cache tiers, a local UFS) captures them there, so a crash after any operation
can be paired with the files as they stood at that moment.

Replaying from the start for every crash is deliberately naive: a test's log is a few megabytes
at most and obviously-correct matters more than fast here.
"""

from __future__ import annotations

import errno
import functools
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from recovery import crashdisk
from recovery.crashdisk import (
    FILLS,
    SCATTERED,
    SECTOR,
    Crash,
    Create,
    Fill,
    Fsync,
    FsyncDir,
    Image,
    MakeDir,
    Op,
    Rename,
    Tear,
    Tracker,
    Truncate,
    Unlink,
    Write,
    parents_of,
    split_path,
)

# The disk model's names, for tests and tools that build crashes from this module.
__all__ = [
    "FILLS",
    "SCATTERED",
    "SECTOR",
    "Crash",
    "Create",
    "Fill",
    "Fsync",
    "FsyncDir",
    "Image",
    "MakeDir",
    "Op",
    "Rename",
    "SimFile",
    "SimStorage",
    "Tear",
    "Tracker",
    "Truncate",
    "Unlink",
    "Write",
]


# -- the storage --------------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """Runs ``method`` under its storage's lock: the journal's writer process reaches the
    storage through a server thread (journal/remote_storage.py) while the caller's threads use
    it too, and each operation must be checked, recorded and applied as one."""

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with (self if isinstance(self, SimStorage) else self.storage)._lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


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

    @_locked
    def write(self, data: bytes) -> None:
        self._check()
        s = self.storage
        s._fault("write", self.path)
        if self.append:
            self.pos = len(s.disk.current.data[self.ino])
        if data:
            s._record(Write(self.ino, self.pos, bytes(data)))
        self.pos += len(data)

    @_locked
    def write_at(self, data: bytes, offset: int) -> None:
        self._check()
        s = self.storage
        s._fault("write", self.path)
        if data:
            s._record(Write(self.ino, offset, bytes(data)))

    @_locked
    def fsync(self) -> None:
        self._check()
        self.storage._fault("fsync", self.path)
        self.storage._record(Fsync(self.ino))

    @_locked
    def truncate(self, size: int) -> None:
        self._check()
        if size < 0:
            raise OSError(errno.EINVAL, "negative size", self.path)
        self.storage._record(Truncate(self.ino, size))

    @_locked
    def close(self) -> None:
        self.closed = True


class SimStorage:
    """``Storage`` in memory, recording every operation since it was made (or crashed into)."""

    def __init__(self, image: Image | None = None) -> None:
        # No ``root``: there is no directory on disk. An engine on it has no home (no cache
        # tiers, no credentials file), rather than one named after the working directory.
        self.base = image.copy() if image is not None else Image()
        self.disk = Tracker(self.base)
        self.log: list[Op] = []
        self._next_ino = max(self.base.data, default=0) + 1
        self._denied: list[str] = []
        # kind -> [successes left before failing, failures left, errno]
        self._faults: dict[str, list[int]] = {}
        self._cache: tuple[int, Tracker] | None = None
        self.failures: list[OSError] = []  # injected failures raised so far
        self.before_op: Callable[[int], None] | None = None
        # A journal with writer="process" runs its writer process on this storage, served to it
        # over a socket (journal/remote_storage.py); off, such a journal uses the thread writer.
        self.serves_writer_process = False
        # Every operation holds it: the writer process's server thread and the caller's
        # threads call at once, and before_op must see the operations in their true order.
        self._lock = threading.RLock()

    # -- recording ------------------------------------------------------------------------------

    @property
    def op_count(self) -> int:
        return len(self.log)

    def _record(self, op: Op) -> None:
        if self.before_op is not None:
            self.before_op(len(self.log))
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
        d, name = split_path(path)
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

    @_locked
    def makedirs(self, path: str) -> None:
        missing = [p for p in parents_of(path) if p not in self.disk.current.dirs]
        if not missing:
            return
        for p in missing:
            d, name = split_path(p)
            if name in self.disk.current.entries.get(d, {}):
                raise FileExistsError(errno.EEXIST, "a file is in the way", p)
        self._check_allowed(path)
        self._record(MakeDir(path))

    @_locked
    def listdir(self, path: str) -> list[str]:
        names = set(self._dir(path))
        prefix = path + "/" if path else ""
        for d in self.disk.current.dirs:
            if d and d.startswith(prefix) and "/" not in d[len(prefix) :]:
                names.add(d[len(prefix) :])
        return sorted(names)

    @_locked
    def exists(self, path: str) -> bool:
        if path in self.disk.current.dirs:
            return True
        d, name = split_path(path)
        return name in self.disk.current.entries.get(d, {})

    @_locked
    def size(self, path: str) -> int:
        return len(self.disk.current.data[self._ino(path)])

    @_locked
    def read(self, path: str) -> bytes:
        return self.disk.current.data[self._ino(path)]

    @_locked
    def open_write(self, path: str, *, append: bool, sync_writes: bool = False) -> SimFile:
        # sync_writes is a speed hint for real disks; here durability comes from fsync only,
        # which is the stricter model (callers fsync after writes either way).
        d, name = split_path(path)
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

    @_locked
    def open_update(self, path: str, *, sync_writes: bool = False) -> SimFile:
        self._check_allowed(path)
        return SimFile(self, self._ino(path), path, False)

    @_locked
    def rename(self, src: str, dst: str) -> None:
        self._ino(src)
        sd, sn = split_path(src)
        dd, dn = split_path(dst)
        self._dir(dd)
        if dst in self.disk.current.dirs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", dst)
        self._check_allowed(src)
        self._check_allowed(dst)
        if self.disk.current.entries[dd].get(dn) == self.disk.current.entries[sd][sn]:
            return  # POSIX: renaming a file onto itself does nothing
        self._record(Rename(sd, sn, dd, dn))

    @_locked
    def unlink(self, path: str) -> None:
        self._ino(path)
        self._check_allowed(path)
        self._record(Unlink(*split_path(path)))

    @_locked
    def fsync_dir(self, path: str) -> None:
        self._dir(path)
        self._fault("fsync", path)
        self._record(FsyncDir(path))

    @_locked
    def check_writable(self, path: str) -> None:
        self._dir(path)
        self._check_allowed(path)

    # -- inspection ---------------------------------------------------------------------------

    @_locked
    def files(self) -> dict[str, bytes]:
        """The current content of every file, by path."""
        return self.disk.current.files()

    @_locked
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
        return crashdisk.crash_image(self.tracker_at(crash.cut), crash)

    def crashed(self, cut: int, prefix: int = 0, tear: Tear | None = None) -> SimStorage:
        """A new storage holding what the disk could hold after a crash right after operation
        ``cut``: the durable state then, plus the first ``prefix`` pending operations, the last
        of them torn by ``tear``. Nothing done to it affects this storage."""
        return SimStorage(self.crash_image(Crash(cut, prefix, tear)))

    def crash(self, crash: Crash) -> SimStorage:
        return SimStorage(self.crash_image(crash))

    def all_crashes(self, cut: int, *, seed: int = 0) -> Iterator[Crash]:
        """Every crash after operation ``cut`` (``crashdisk.all_crashes``)."""
        return crashdisk.all_crashes(self.tracker_at(cut).pending, cut, seed)

    def sample_crashes(self, cut: int, rng: random.Random, n: int) -> list[Crash]:
        """Up to ``n`` distinct crashes after operation ``cut`` (``crashdisk.sample_crashes``)."""
        return crashdisk.sample_crashes(self.tracker_at(cut).pending, cut, rng, n)

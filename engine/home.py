"""A Shoal home directory: its layout and the lock that keeps a second process out."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import shlex
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engine.errors import HomeLocked, PermissionDenied
from journal.storage import (
    PRIVATE_FILE_MODE,
    Storage,
    makedirs_private,
    unlink_durably,
    write_durably,
)

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
LOCK_FILE = "lock"
CONFIG_FILE = "shoal.toml"
HOME_ID_FILE = "home-id"  # names the home in the marks of its tier directories


def default_home() -> str:
    """The home when neither --home nor SHOAL_HOME names one: /var/lib/shoal for root, else
    the user's XDG data directory ($XDG_DATA_HOME, or ~/.local/share) /shoal."""
    if os.geteuid() == 0:
        return "/var/lib/shoal"
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(data, "shoal")


def resolve_home(home: str | None) -> str:
    path = home or os.environ.get("SHOAL_HOME") or default_home()
    return os.path.abspath(path)


def is_home(path: str) -> bool:
    """Whether ``path`` is a home some process has opened for use (it has a journal), or one
    prepared for it (its shoal.toml written first): a mistyped path is neither."""
    for inside, want in ((JOURNAL_DIR, stat.S_ISDIR), (CONFIG_FILE, stat.S_ISREG)):
        try:
            if want(os.stat(os.path.join(path, inside)).st_mode):
                return True
        except PermissionError:  # another user's home (0700): opening its lock says so
            return True
        except (FileNotFoundError, NotADirectoryError):
            pass
    return False


class HomeLock:
    """An exclusive flock on <home>/lock, held while a process has the home open."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.fd: int | None = None

    def acquire(self) -> None:
        makedirs_private(self.home)
        path = os.path.join(self.home, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise HomeLocked(
                    f"Shoal home {self.home} is in use by process {holder}; stop it (or use"
                    " its admin channel) before opening the home again"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def home_id(storage: Storage) -> tuple[str, bool]:
    """The home's identity, made the first time it is asked for: a tier directory's mark names
    the home that cleans it (engine/cache/tierclaim.py). Random, not the home's path: a home
    moved elsewhere is still itself. And whether it was made now."""
    known = known_home_id(storage)
    if known is not None:
        return known, False
    made = secrets.token_hex(8)
    storage.makedirs("")  # a home being created: its first file
    write_durably(storage, HOME_ID_FILE, made.encode() + b"\n")
    return made, True


def known_home_id(storage: Storage) -> str | None:
    """``home_id`` without making one (an inspection changes nothing)."""
    if not storage.exists(HOME_ID_FILE):
        return None
    known = storage.read(HOME_ID_FILE).decode(errors="replace").strip()
    return known if known.isalnum() else None


# -- who may read the home ------------------------------------------------------------------
#
# A home holds every name of the namespace (the log, checkpoints), the logs and the cached data
# of files whose store may refuse other users: everything in it, and in the cache's tiers kept
# elsewhere (/dev/shm), is its owner's only. New files and directories are created so
# (journal/storage.py); a home made by an older version, or opened up by hand, is tightened
# when it is opened for use, and `shoal fsck` reports what is still too open.

OPEN_BITS = 0o077  # any permission for the group or for others


def too_open(roots: Iterable[str]) -> Iterator[tuple[str, os.stat_result]]:
    """Every file and directory at or below ``roots`` that its group or others may use (mode,
    stat). Symbolic links (their mode means nothing) and other file systems mounted inside
    (a FUSE mount would be asked to serve its own daemon) are not entered."""
    for root in roots:
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            continue
        yield from _walk(root, st, st.st_dev)


def _walk(path: str, st: os.stat_result, device: int) -> Iterator[tuple[str, os.stat_result]]:
    if stat.S_ISLNK(st.st_mode) or st.st_dev != device:
        return
    if st.st_mode & OPEN_BITS:
        yield path, st
    if not stat.S_ISDIR(st.st_mode):
        return
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        try:
            inner = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed meanwhile (a block evicted, a log rotated)
            continue
        yield from _walk(entry.path, inner, device)


def tighten(roots: list[str], *, announce: bool = True) -> list[str]:
    """Takes the group's and others' permissions from everything at or below ``roots`` (the
    home, the cache's tier directories); logs each path changed, once, and returns them
    (``announce`` false: at info level only, for a home being created, whose directories the
    user has just made and nothing has been exposed yet). A path this user cannot change
    (another user owns it) is refused, saying what to run."""
    changed = []
    for path, st in too_open(roots):
        old = stat.S_IMODE(st.st_mode)
        try:
            os.chmod(path, old & ~OPEN_BITS)  # only narrows: a symlink swapped in is harmless
        except FileNotFoundError:
            continue
        except PermissionError:
            root = next(r for r in roots if path == r or path.startswith(r.rstrip("/") + "/"))
            raise PermissionDenied(
                f"{path} is mode {old:04o}: other users can read it, and this user (uid"
                f" {os.geteuid()}) cannot change it (its owner is uid {st.st_uid}); run"
                f" `chmod -R go-rwx {shlex.quote(root)}` as its owner, then start again"
            ) from None
        log.log(
            logging.WARNING if announce else logging.INFO,
            "%s was mode %04o, open to other users: tightened to %04o",
            path, old, old & ~OPEN_BITS,
        )  # fmt: skip
        changed.append(path)
    return changed


def claim_dirs(paths: Iterable[str]) -> set[str]:
    """Makes each of ``paths`` (the cache's tier directories outside the home) if it is
    missing (returns those it made), and refuses one this user does not own. Their names may
    be in a directory every user can write (the MEM tier's is /dev/shm/shoal-<hash of the
    home's path>, which anyone can work out): one made there first by another user, or a
    symbolic link another user planted, would let that user read or replace the blocks
    cached in it."""
    me = os.geteuid()
    made = set()
    for path in paths:
        try:
            if not os.path.lexists(path):
                makedirs_private(path)
                made.add(path)
        except FileExistsError:
            pass  # something that is not a directory (or made meanwhile): judged below
        link = os.lstat(path)
        try:
            target = os.stat(path)
        except FileNotFoundError:  # a link to nothing
            target = link
        owner = link.st_uid if link.st_uid != me else target.st_uid
        if owner == me and stat.S_ISDIR(target.st_mode):
            continue
        made.discard(path)
        if stat.S_ISLNK(link.st_mode):
            what = f"a symbolic link to {os.readlink(path)}"
        else:
            what = "a directory" if stat.S_ISDIR(link.st_mode) else "not a directory"
        if owner == me:
            why = "the cache needs a directory there"
        else:
            what += f", owned by uid {owner}, not by this user (uid {me})"
            why = "its owner could read or replace the blocks cached there"
        raise PermissionDenied(
            f"cache tier directory {path} is {what}: {why}; remove it (or give the tier"
            " another path: [[cache.tiers]] in shoal.toml), then start again"
        )
    return made


# -- clean and unclean stops -----------------------------------------------------------------
#
# A change that reaches a store before its journal entry (engine/ufsfirst.py, THROUGH writes)
# is lost from the journal if the process dies between the two; only a listing of its
# directory finds it again. A directory loaded before such a stop is therefore listed once more
# at its first access after it (engine/sync.py), which needs to know that the stop was unclean
# and which listings predate it, across any number of later starts and clean stops.

OPEN_MARKER = "open"  # exists while a process has the home open for use
RELIST_FILE = "relist-before"  # wall-clock ns of the last start after an unclean stop


@dataclass(frozen=True)
class StopRecord:
    """What the home says about how its users stopped.

    ``unclean``: the last process that opened it for use did not close it (its marker is still
    there: a kill -9, a power loss, a fatal error). ``relist_before``: wall-clock ns of the
    last start after such a stop; a directory whose listing mark is older is listed once more
    at its first access. ``problem``: the record file could not be read as a time (every
    loaded directory is then listed once more, and a start writes it anew)."""

    unclean: bool
    relist_before: int | None
    problem: str | None = None


def read_stop_record(storage: Storage) -> StopRecord:
    """The record as it is, changing nothing (fsck, an inspection)."""
    unclean = storage.exists(OPEN_MARKER)
    if not storage.exists(RELIST_FILE):
        return StopRecord(unclean, None)
    raw = storage.read(RELIST_FILE)
    try:
        at_ns = int(raw.decode("ascii").strip())
        if at_ns <= 0:
            raise ValueError(at_ns)
    except ValueError:
        shown = raw[:40].decode("ascii", errors="replace")
        return StopRecord(unclean, None, f"{RELIST_FILE} holds {shown!r}, not a time in ns")
    return StopRecord(unclean, at_ns)


def begin_use(storage: Storage) -> StopRecord:
    """Opens the home for use: after an unclean stop (or with a record that cannot be read)
    every listing made so far becomes due once, recorded durably before the marker of this
    use is; returns the record to follow."""
    record = read_stop_record(storage)
    if record.unclean or record.problem is not None:
        # Never earlier than a boundary already recorded: a clock set back must not make a
        # directory still due look listed after it.
        at_ns = max(time.time_ns(), (record.relist_before or 0) + 1)
        write_durably(storage, RELIST_FILE, f"{at_ns}\n".encode())
        record = StopRecord(True, at_ns, record.problem)
    if not storage.exists(OPEN_MARKER):
        write_durably(storage, OPEN_MARKER, f"{os.getpid()}\n".encode())
    return record


def end_use(storage: Storage) -> None:
    """A clean stop: the journal is closed, nothing is in flight. Durable, so that a power
    loss right after it is not taken for an unclean stop (that would cost listings only)."""
    unlink_durably(storage, [OPEN_MARKER])

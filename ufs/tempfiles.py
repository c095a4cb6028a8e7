"""The local connector's temporary files: recognisable as Shoal's and nobody else's, and removed
once the process that wrote one is provably gone.

A write goes to a temporary file beside its target (ufs/atomic.py), created with O_EXCL, and is
renamed over the target; a writer killed before the rename leaves that file behind. Its name
says who wrote it::

    .shoal-tmp-<host>-<system>-<pid>-<start>-<nonce>-<check>

``host`` is a hash of the host name; ``system`` a hash of this boot and pid namespace; ``pid``
and ``start`` (the process's start time in clock ticks since boot) name the writing process
exactly, even after its pid is reused; ``nonce`` is random; ``check`` is a hash of all the
rest. A user's own file named ``.shoal-tmp-anything`` does not have that form: it is an
ordinary file, listed and read like any other.

A leftover is removed only when its writer is provably gone:

- written on this host, in this boot and pid namespace: no process ``pid`` runs with start time
  ``start`` (it exited, was killed, is a zombie, or the pid now belongs to another process);
- written on this host before this boot (its mtime is older than the boot): every process of
  that boot is gone.

A file written on another host (an NFS directory that several machines mount) is never removed
here: that host's own Shoal removes it. Nor is one from another pid namespace of this boot (a
container with the same host name), whose writer this process cannot see.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import socket
import stat
import threading
from dataclasses import dataclass

PREFIX = ".shoal-tmp-"
_NAME = re.compile(
    r"\.shoal-tmp-([0-9a-f]{8})-([0-9a-f]{8})-([0-9]{1,10})-([0-9]{1,20})-[0-9a-f]{16}-([0-9a-f]{8})"
)
_LIVE_STATES = frozenset("RSDTtWIPK")  # /proc/PID/stat states of a process that can still write


@dataclass(frozen=True, slots=True)
class Writer:
    """The process a temporary file's name says wrote it."""

    host: str
    system: str
    pid: int
    start: int


def _hash8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _host_tag() -> str:
    return _hash8(f"host:{socket.gethostname()}")


@functools.cache
def _system_tag() -> str:
    boot_id = _read("/proc/sys/kernel/random/boot_id").strip()
    try:
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pid_ns = 0
    return _hash8(f"system:{boot_id}:{pid_ns}")


@functools.cache
def _boot_time_ns() -> int | None:
    for line in _read("/proc/stat").splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) * 1_000_000_000
    return None


def process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of live process ``pid``; None if no process of
    that pid can write any more (none, or a zombie) or /proc cannot tell."""
    text = _read(f"/proc/{pid}/stat")
    # The command name (in parentheses) may hold spaces and parentheses: fields follow the last.
    _, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 20 or fields[0] not in _LIVE_STATES:
        return None
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
    except ValueError:
        return None


_own_start: dict[int, int | None] = {}


def _start_of_this_process() -> int | None:
    pid = os.getpid()  # a forked child is another writer: looked up again
    if pid not in _own_start:
        _own_start[pid] = process_start(pid)
    return _own_start[pid]


def _check(fields: str) -> str:
    return _hash8(f"shoal-tmp:{fields}")


def this_writer() -> Writer:
    """This process, as temporary file names name it (start 0 when /proc cannot tell)."""
    return Writer(_host_tag(), _system_tag(), os.getpid(), _start_of_this_process() or 0)


def name_for(writer: Writer, nonce: str) -> str:
    """The temporary file name ``writer`` gives with ``nonce`` (16 hex digits)."""
    fields = f"{writer.host}-{writer.system}-{writer.pid}-{writer.start}-{nonce}"
    return f"{PREFIX}{fields}-{_check(fields)}"


def temp_name() -> str:
    """A new temporary file name of this process (unique: create it with O_EXCL)."""
    return name_for(this_writer(), secrets.token_hex(8))


def writer_of(name: str) -> Writer | None:
    """Who wrote ``name``, if it is a Shoal temporary file name; None for any other name."""
    if not name.startswith(PREFIX):
        return None
    match = _NAME.fullmatch(name)
    if match is None or match.group(5) != _check(name[len(PREFIX) : -9]):
        return None
    return Writer(match.group(1), match.group(2), int(match.group(3)), int(match.group(4)))


def is_temp(name: str) -> bool:
    return writer_of(name) is not None


def abandoned(name: str, mtime_ns: int) -> bool:
    """True if ``name`` is a Shoal temporary file whose writer is provably gone (see above)."""
    writer = writer_of(name)
    if writer is None or writer.host != _host_tag():
        return False
    if writer.system == _system_tag():
        if _start_of_this_process() is None:
            return False  # no /proc: liveness cannot be proved either way
        return process_start(writer.pid) != writer.start
    boot = _boot_time_ns()
    return boot is not None and mtime_ns < boot


def sweep(root: str, stop: threading.Event | None = None, *, remove: bool = True) -> list[str]:
    """Removes the abandoned temporary files below ``root`` (only finds them with ``remove``
    false: a report) and returns their paths, relative to ``root``. Walks by directory
    descriptors (trees deeper than PATH_MAX too), never through a symlink; stops early when
    ``stop`` is set. Errors (a directory removed meanwhile, one it may not read) skip that
    entry: the next sweep tries again."""
    removed: list[str] = []
    for folder, _dirs, files, dir_fd in os.fwalk(root, onerror=lambda exc: None):
        if stop is not None and stop.is_set():
            break
        for name in files:
            if not name.startswith(PREFIX):
                continue
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and abandoned(name, st.st_mtime_ns):
                    if remove:
                        os.unlink(name, dir_fd=dir_fd)
                    removed.append(os.path.relpath(os.path.join(folder, name), root))
            except OSError:
                continue
    return removed

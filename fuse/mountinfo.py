"""Which Shoal mounts this machine has, and whether their daemons live.

The kernel's mount table names each Shoal mount ``shoal:<home>`` (its fsname), and the home
holds its daemon's pid: that is how `shoal umount` finds the daemon to wait for, and how a new
daemon tells a live mount from one whose daemon was killed (the kernel may still answer
``stat`` on a dead mount from its attribute cache, so ENOTCONN alone does not tell).
"""

from __future__ import annotations

import os

FSTYPE = "fuse.shoal"
FSNAME_PREFIX = "shoal:"
PID_FILE = "daemon.pid"


def _unescape(field: str) -> str:
    """/proc/self/mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def shoal_mounts() -> dict[str, tuple[str, str]]:
    """mountpoint -> (home, device "major:minor") of every Shoal mount of this machine."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point, source = _unescape(fields[4]), _unescape(fields[sep + 2])
            if fields[sep + 1] == FSTYPE and source.startswith(FSNAME_PREFIX):
                found[point] = (source[len(FSNAME_PREFIX) :], fields[2])
    return found


def process_start(pid: int) -> int | None:
    """ufs/tempfiles.py's: imported here on first use, so that the fsspec client, which reads
    only the mount table from this module, loads no connector code in DataLoader workers."""
    from ufs.tempfiles import process_start as start

    return start(pid)


def pid_file_text(mountpoint: str) -> str:
    """What the daemon writes to its home's pid file: its pid, mount point and start time."""
    started = process_start(os.getpid())
    return f"{os.getpid()}\n{mountpoint}\n{'' if started is None else started}\n"


def daemon_pid(home: str) -> int | None:
    """The pid of ``home``'s daemon; None if the home has none, or if that pid is now another
    process's (a killed daemon's file, its pid taken since: that process is no daemon of ours
    to wait for, and its mount is dead). A file without a start time is taken at its word."""
    try:
        with open(os.path.join(home, PID_FILE)) as f:
            lines = f.read().split("\n")
        number = int(lines[0])
        started = lines[-2] if len(lines) > 3 else ""  # last: a mount point may hold a newline
        written = int(started) if started.isascii() and started.isdigit() else None
    except (OSError, ValueError):
        return None
    now = process_start(number)
    if written is not None and now is not None and now != written:
        return None
    return number


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie is dead for our purpose: its parent has not
    reaped it yet)."""
    return process_start(pid) is not None


def served(mountpoint: str) -> bool | None:
    """None: no Shoal mount there; True: its daemon lives; False: its daemon is gone."""
    entry = shoal_mounts().get(mountpoint)
    if entry is None:
        return None
    pid = daemon_pid(entry[0])
    return pid is not None and alive(pid)

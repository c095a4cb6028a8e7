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


def daemon_pid(home: str) -> int | None:
    try:
        with open(os.path.join(home, PID_FILE)) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def served(mountpoint: str) -> bool | None:
    """None: no Shoal mount there; True: its daemon lives; False: its daemon is gone."""
    entry = shoal_mounts().get(mountpoint)
    if entry is None:
        return None
    pid = daemon_pid(entry[0])
    return pid is not None and alive(pid)

"""The daemon's name in `ps`: "shoal: serving MOUNTPOINT" rather than the Python command line
that started it (`python -m cli.main mount --foreground ...`).

setproctitle cannot be installed here (no package index reachable), so the title is written as
it does: over the memory the kernel shows as /proc/PID/cmdline (the argument strings, which
Python only copied), and the thread's name (/proc/PID/comm, 15 bytes: `ps -e`, `top`). The
title holds the mount point only, never an option: secrets never reach it.
"""

from __future__ import annotations

COMM_MAX = 15  # TASK_COMM_LEN - 1


def set_title(title: str) -> None:
    """Best effort: where /proc cannot be written, the old command line stays shown."""
    raw = title.encode(errors="surrogateescape")
    try:
        with open("/proc/self/comm", "wb") as comm:
            comm.write(raw[:COMM_MAX])
    except OSError:
        pass
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # arg_start and arg_end: fields 48 and 49 of proc(5); 3 is the first after the name.
        start, end = int(fields[45]), int(fields[46])
        if not 0 < start < end:
            return
        # Zeros to the end and a zero last byte: the kernel shows the title and nothing of
        # the arguments it covers (a non-zero last byte would make it read on into environ).
        block = raw[: end - start - 1].ljust(end - start, b"\0")
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(block)
    except (OSError, ValueError, IndexError):
        pass

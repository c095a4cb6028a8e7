"""A directory's listing mark: the fingerprint it keeps once listed from its store, which
says from which mount (a directory mounted again is a new one) and when (the sync interval
decides when to look again; the mark outlives a restart)."""

from __future__ import annotations

LISTED = "shoal-listed"  # a directory's fingerprint once listed: LISTED:<mount time>:<ns>


def listing_mark(mount_time: int, at_ns: int) -> str:
    """The fingerprint recorded on a directory listed from the mount of ``mount_time`` at
    ``at_ns`` (wall clock): a directory mounted again is a new one, and the time outlives a
    restart, which a monotonic clock does not."""
    return f"{LISTED}:{mount_time}:{at_ns}"


def parse_listing_mark(fingerprint: str | None) -> tuple[int, int] | None:
    """(mount time, listed at) of a directory's listing mark; None for anything else."""
    if not fingerprint or not fingerprint.startswith(LISTED + ":"):
        return None
    try:
        _prefix, mount_time, at_ns = fingerprint.split(":")
        return int(mount_time), int(at_ns)
    except ValueError:
        return None

"""The interpreter's switch interval, shortened for a process whose threads hand work to each
other: a thread waiting for the GIL (the journal's writer after a write, a storer, the FUSE
event loop behind a background thread) gets it within half a millisecond instead of CPython's
default 5 ms, which would otherwise be added to a commit or to a reply."""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0005


def shorten_switch_interval() -> None:
    """At most ``SWITCH_INTERVAL_S`` from now on (never lengthened: a caller may want less)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))

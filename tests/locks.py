"""A lock held by another thread for the length of a block, for tests of calls that must
decline rather than wait for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def held_elsewhere(lock: Any) -> Iterator[None]:
    """``lock`` taken by a thread of its own before the block starts, released after it."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()

"""Items handed on after a fixed delay, in the order they came, by one thread.

The persister queues ASYNC_THROUGH uploads through it: a tool that writes a file and then
changes its owner, mode and times (`tar x`, `cp -p`, `rsync`) does so within a millisecond of
the close, and an upload started at the close would be called off and done again by each
change, the change waiting for the store's fsync each time (engine/ufsattrs.py holds the
file). Started a little later, the upload finds the final attributes and runs once, and the
changes are journaled only: the store has no copy yet.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class DelayQueue(Generic[T]):
    """Calls ``run(item)`` ``delay_s`` after each ``put``, on a thread of its own (started
    at the first put); with ``delay_s`` <= 0 at once, on the caller's thread."""

    def __init__(self, delay_s: float, run: Callable[[T], None], name: str) -> None:
        self.delay_s = delay_s
        self._run = run
        self._name = name
        self._cond = threading.Condition()
        self._items: deque[tuple[float, T]] = deque()  # (due, item): in due order
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, item: T) -> None:
        if self.delay_s <= 0:
            self._run(item)
            return
        with self._cond:
            if self._closed:
                return
            self._items.append((time.monotonic() + self.delay_s, item))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self) -> None:
        """Hands on every waiting item now (someone waits for them all: a drain)."""
        with self._cond:
            items = [item for _, item in self._items]
            self._items.clear()
        for item in items:
            self._run(item)

    def close(self) -> None:
        """Drops the waiting items (their owner keeps them elsewhere: the journal) and stops."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._items:
                        wait = self._items[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._closed:
                    return
                _, item = self._items.popleft()
            self._run(item)

"""Progress bars of long commands (load, free, persist, fsck, checkpoint): on the terminal the
command was typed at, quiet when that is no terminal (a script, a pipe, a log).

Through the daemon, stderr is the admin channel (fuse/admin.py): the client tells the daemon
whether its own stderr is a terminal and how wide it is, and the channel's stream answers
``isatty()`` and ``columns`` accordingly, so the bar tqdm draws there is the one the user's
terminal shows.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar(total: int, desc: str, **kwargs: Any) -> tqdm[Any]:
    """A bar on stderr; disabled (drawing nothing) unless stderr is a terminal."""
    stream = sys.stderr
    return tqdm(
        total=total,
        desc=desc,
        file=stream,
        disable=not is_terminal(stream),
        ncols=getattr(stream, "columns", None) or _size().columns,
        nrows=_size().lines,
        **kwargs,
    )


def over(items: Iterable[T], total: int, desc: str, unit: str = "file") -> Iterator[T]:
    """``items``, counted on a bar (``total`` of them) as they are taken."""
    with bar(total, desc, unit=unit) as progress:
        for item in items:
            yield item
            progress.update(1)


def _size() -> os.terminal_size:
    """The terminal's size; a pseudo-terminal nobody sized (`script` in a pipeline) says 0x0,
    which tqdm takes for no room to draw in: $COLUMNS and $LINES, else 80x24, instead."""
    return shutil.get_terminal_size()


def is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):
        return False


@contextmanager
def waiting(desc: str) -> Iterator[None]:
    """For work that cannot count its steps (a checkpoint is one SQLite fill under the gate's
    lock): on a terminal, ``desc`` and the time it has taken so far, redrawn while it runs."""
    progress = bar(0, desc, bar_format="{desc}: {elapsed}")
    if progress.disable:
        yield
        return
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.5):
            progress.refresh()

    ticker = threading.Thread(target=tick, name="progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        progress.close()

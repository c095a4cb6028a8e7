"""The journal directory's lock: an exclusive flock shared with the writer child that a
journal starts (journal/commit_process.py), held until that child exits."""

from __future__ import annotations

import errno
import fcntl
import os
import time

from journal.errors import JournalNotWritable
from journal.storage import OsStorage, join

LOCK_WAIT_S = 30.0


def lock_journal_dir(storage: OsStorage, root: str, wait_s: float = LOCK_WAIT_S) -> int:
    """An exclusive flock on the journal directory, shared with the writer child it will start.

    Waits (bounded) because after a kill -9 the old child may still be writing its last batch.
    """
    fd = os.open(join(storage.root, root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                os.close(fd)
                raise
            if time.monotonic() >= deadline:
                os.close(fd)
                raise JournalNotWritable(
                    f"journal directory {storage.root}/{root} is locked by another process"
                    f" for {wait_s:.0f} s (a journal writer still running?); stop it first"
                ) from None
            time.sleep(0.01)

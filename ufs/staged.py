"""A new file's bytes written straight into its store while the writer still writes them.

A store that can hold a temporary file of ours (the local connector, at its root) hands one
out (``UnderFS.stage``) before the first byte is written; the writer writes into it; at close
or fsync the store lands it (``UnderFS.land``): owner and mode set, fsynced, renamed over the
target, directory fsynced. The bytes are written once, and close waits only for that tail. A
temporary file is named as the local connector names its own (ufs/tempfiles.py): one a killed
writer leaves is removed once its process is provably gone, as every start does, and fsck lists
it meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Callable


class StagedWrite:
    """A temporary file in a store, open for reading and writing; its descriptor is the
    writer's until it is landed or discarded."""

    # Names no target until ``land`` gives it one: one may be made ahead of the file it will
    # hold (engine/spools.py's spares).
    targetless = True

    def __init__(self, fd: int, temp: str) -> None:
        self.fd = fd
        self.temp = temp  # its full path
        self.landed = False
        # Set by the engine: what must be durable before the store holds any byte of the file
        # (its StoreCopy), returning the UfsAttrs the stored file gets. A store that sends
        # bytes before ``land`` (ufs/s3parts.py) calls it first; ``land`` is given both anyway.
        self.prepare: Callable[[], object] | None = None

    def abandon(self) -> None:
        """As ``discard``, but waits for what a store that sends bytes early must undo."""
        self.discard()

    def wrote(self, offset: int, end: int) -> None:
        """The writer wrote [offset, end) (a store that uploads as the bytes come sends what
        filled: ufs/s3parts.py); nothing to do for a temporary file."""

    def truncated(self, size: int) -> None:
        """The writer truncated the file to ``size``."""

    def close(self) -> None:
        """The writer is done with the descriptor (landed or discarded): closed now, or by
        a store whose own threads still read it (ufs/s3parts.py) once they are done."""
        os.close(self.fd)

    def discard(self) -> None:
        """The temporary file removed (its content will not land); the descriptor stays open until
        ``close``."""
        if self.landed:
            return
        self.landed = True  # nothing left to land or remove
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass

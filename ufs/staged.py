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


class StagedWrite:
    """A temporary file in a store, open for reading and writing; its descriptor is the
    writer's until it is landed or discarded."""

    def __init__(self, fd: int, temp: str) -> None:
        self.fd = fd
        self.temp = temp  # its full path
        self.landed = False

    def discard(self) -> None:
        """The temporary file removed (its content will not land); the descriptor stays the
        writer's to close."""
        if self.landed:
            return
        self.landed = True  # nothing left to land or remove
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass

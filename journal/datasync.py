"""Data files synced before the log that names them: ext4's data=ordered, for the cache tiers.

With journal.durability = "commit_interval" the cache writes a new block file without syncing
it and proposes its entry at once: the closing caller waits for neither fsync (the block's,
its directory's). It tells the writer process so first (a CONTROL_DATA message, before the
entry's own), which then syncs the file systems of the data directories it was given
(``syncfs``, one call each, whatever number of files) before its next sync of the log, so a
durable entry always names durable bytes. An entry written but not synced may still reach the
disk without its bytes (the kernel writes back any dirty page at any time): the start after a
power loss finds it by the block's checksum and cuts the log before it (journal/datacut.py),
which loses only operations nobody had made durable, and keeps a prefix of them.
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable


def _syncfs() -> Callable[[int], int]:
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syncfs
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class DataSync:
    """What the writer process syncs before the log: the file systems of ``dirs``, when data
    was written unsynced since the last sync (``pending``)."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs
        self.pending = False
        self.syncs = 0
        self._fds: dict[int, int] = {}  # st_dev -> a descriptor on that file system
        self._call = _syncfs() if dirs else None

    def sync(self) -> None:
        """Syncs the data file systems if unsynced data was written since the last sync. An error
        is fatal: the kernel may have dropped the dirty pages (FIELD-NOTES, journals)."""
        if not self.pending:
            return
        self.sync_files()
        self.pending = False

    def sync_files(self) -> None:
        """``sync`` whether or not ``pending``, which is left alone (the writer process's sync
        thread takes it, under its lock, before it starts: journal/logsync.py)."""
        self._open_new()
        for fd in self._fds.values():
            if self._call is not None and self._call(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs of a cache tier's file system: {os.strerror(err)}")
        self.syncs += 1

    def _open_new(self) -> None:
        """Descriptors for the directories' file systems; a tier directory is made by its first
        block, so one missing now holds nothing to sync yet."""
        for path in self.dirs:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if st.st_dev not in self._fds:
                self._fds[st.st_dev] = os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def encode(dirs: list[str]) -> str:
    """The command-line argument that hands a DataSync to the writer process."""
    return json.dumps(dirs)


def decode(dirs: str) -> DataSync:
    return DataSync(list(json.loads(dirs)))

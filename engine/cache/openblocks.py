"""Block files kept open between hits.

A hit used to open the block file, fstat it, pread and close it: three system calls around
the one that moves the bytes, each a moment where eight readers on two cores hand the GIL
around. Descriptors stay open here instead (bounded, least recently used closed first).

A descriptor is closed only when nobody is reading through it: a number closed under a
reader could be reused by another open meanwhile, and that reader would read another file.
Whoever takes one gets its fstat too: a block file unlinked or replaced since it was opened
(st_nlink 0) is reopened by name, so a cached descriptor never hides a change on disk.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

OPEN_LIMIT = 256  # descriptors kept per tier
# A block file's first read after it was written (every block a stop moved down a tier, every
# block a cold pass stored) would otherwise move its access time, which nothing reads: on ext4
# a journaled inode update, ~2 us of the event loop's time per block in a tier pass. Only the
# file's owner may ask (EPERM otherwise: a tier directory another user filled), then without.
_NOATIME = [os.O_RDONLY | os.O_CLOEXEC | os.O_NOATIME]
K = TypeVar("K", bound=Hashable)  # a block key


class _Open:
    __slots__ = ("fd", "users", "forgotten")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.forgotten = False  # out of the table: closed by its last user


class OpenBlockFiles(Generic[K]):
    def __init__(self, path_of: Callable[[K], str], limit: int = OPEN_LIMIT) -> None:
        self._path_of = path_of
        self._limit = limit
        self._lock = threading.Lock()
        self._open: OrderedDict[K, _Open] = OrderedDict()

    def take(self, key: K) -> tuple[_Open, os.stat_result]:
        """An open descriptor of block ``key``'s file (``.fd``) and its current fstat, to be
        handed back with ``give_back``; OSError (such as FileNotFoundError) if there is no
        such file. (Not a context manager: this is on every hit's path, and a generator-based
        one costs more than the rest of this.)"""
        entry, st = self._take_with_stat(key)
        if st.st_nlink == 0:  # unlinked or replaced since it was opened: by name again
            self.give_back(entry)
            self.forget(key)
            entry, st = self._take_with_stat(key)
        return entry, st

    def _take_with_stat(self, key: K) -> tuple[_Open, os.stat_result]:
        entry = self._take(key)
        try:
            return entry, os.fstat(entry.fd)
        except BaseException:
            self.give_back(entry)
            raise

    @contextmanager
    def opened(self, key: K) -> Iterator[tuple[int, os.stat_result]]:
        """``take`` and ``give_back`` around a block: (descriptor, fstat)."""
        entry, st = self.take(key)
        try:
            yield entry.fd, st
        finally:
            self.give_back(entry)

    def forget(self, key: K) -> None:
        """The block's file is going (or being replaced): its descriptor is closed once
        unused."""
        with self._lock:
            entry = self._open.pop(key, None)
            if entry is not None:
                entry.forgotten = True
                if entry.users == 0:
                    os.close(entry.fd)

    def close(self) -> None:
        with self._lock:
            for entry in self._open.values():
                entry.forgotten = True
                if entry.users == 0:
                    os.close(entry.fd)
            self._open.clear()

    def _take(self, key: K) -> _Open:
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:
                entry.users += 1
                self._open.move_to_end(key)
                return entry
        fd = _open(self._path_of(key))
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:  # opened by another reader meanwhile: use theirs
                os.close(fd)
                entry.users += 1
            else:
                entry = self._open[key] = _Open(fd)
                # Counted before trimming: the entry handed out must never be the victim
                # (closed, its number free for another open, this reader on another file).
                entry.users = 1
                self._trim()
            return entry

    def give_back(self, entry: _Open) -> None:
        with self._lock:
            entry.users -= 1
            if entry.forgotten and entry.users == 0:
                os.close(entry.fd)
            elif len(self._open) > self._limit:  # over while every entry was in use
                self._trim()

    def _trim(self) -> None:
        # With the lock held: the least recently used beyond the limit, if nobody reads them.
        excess = len(self._open) - self._limit
        if excess <= 0:
            return
        victims = []
        for key, entry in self._open.items():  # oldest first: usually the first will do
            if entry.users == 0:
                victims.append(key)
                if len(victims) == excess:
                    break
        for key in victims:
            os.close(self._open.pop(key).fd)


def _open(path: str) -> int:
    try:
        return os.open(path, _NOATIME[0])
    except PermissionError:
        if not _NOATIME[0] & os.O_NOATIME:
            raise  # refused for itself, not for the flag
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    _NOATIME[0] = os.O_RDONLY | os.O_CLOEXEC  # opened without it: not the owner, for all
    return fd

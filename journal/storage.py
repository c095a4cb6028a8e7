"""The small storage interface every file operation of the journal and checkpointer goes through.

``OsStorage`` is the real thing. ``recovery.crashsim.SimStorage`` implements the same interface
in memory, records every write, fsync, rename, unlink and directory fsync, and can "crash" to any
state a real disk could be left in. Paths are relative to the storage's root, '/'-separated.

The crash-safe orderings live here as helpers, not inline at call sites.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

# A home holds the names of every file of the namespace, its logs and its cached data: only its
# owner may read any of it. Modes are given at creation (a umask can only narrow them), so the
# hot path pays no extra system call.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class FileHandle(Protocol):
    def write(self, data: bytes) -> None: ...

    def write_at(self, data: bytes, offset: int) -> None:
        """Writes ``data`` at ``offset`` (the file's end grows if it is passed)."""
        ...

    def fsync(self) -> None: ...

    def truncate(self, size: int) -> None: ...

    def close(self) -> None: ...


class Storage(Protocol):
    def makedirs(self, path: str) -> None: ...

    def listdir(self, path: str) -> list[str]: ...

    def exists(self, path: str) -> bool: ...

    def size(self, path: str) -> int: ...

    def read(self, path: str) -> bytes: ...

    def open_write(self, path: str, *, append: bool, sync_writes: bool = False) -> FileHandle:
        """Opens for writing, creating the file; ``append=False`` truncates it first.

        ``sync_writes`` asks that each write be durable when it returns (O_DSYNC): for small
        appends that are fsynced one by one, it saves a system call. Callers still call
        ``fsync``, which then has nothing to do."""
        ...

    def open_update(self, path: str, *, sync_writes: bool = False) -> FileHandle:
        """Opens an existing file for ``write_at``: neither truncated nor appended to (a log
        segment whose end is zero-filled ahead of its last record)."""
        ...

    def rename(self, src: str, dst: str) -> None: ...

    def unlink(self, path: str) -> None: ...

    def fsync_dir(self, path: str) -> None: ...

    def check_writable(self, path: str) -> None:
        """Raises PermissionError/OSError if files cannot be created in directory ``path``."""
        ...


class OsFile:
    """An open file. With ``sync_writes`` it was opened O_DSYNC: each write returns once its
    data (and the size needed to read it back) is on disk, so ``fsync`` has nothing left to do
    unless the file was truncated.

    Why: a journal commit is then one system call instead of two. The journal's writer thread
    needs the GIL back after every system call, and while request handlers hold it that wait
    can last a whole switch interval. Large writes (checkpoints) do not use it: O_DSYNC makes
    them slower than one write and one fsync.
    """

    __slots__ = ("fd", "path", "sync_writes", "truncated")

    def __init__(self, fd: int, path: str, sync_writes: bool = False) -> None:
        self.fd = fd
        self.path = path
        self.sync_writes = sync_writes
        self.truncated = False  # O_DSYNC does not cover a truncate: fsync must

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def write_at(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def fsync(self) -> None:
        if not self.sync_writes or self.truncated:
            os.fsync(self.fd)
            self.truncated = False

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self.truncated = True

    def close(self) -> None:
        os.close(self.fd)


class OsStorage:
    """Storage on a real directory tree rooted at ``root``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def _p(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def makedirs(self, path: str) -> None:
        full = self._p(path)
        if not os.path.isdir(full):
            makedirs_private(full)
            # makedirs may have created several levels: each new entry is durable only once
            # the directory holding it is fsynced, up to the root.
            parent = os.path.dirname(path)
            while True:
                self.fsync_dir(parent)
                if not parent:
                    break
                parent = os.path.dirname(parent)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._p(path)))

    def exists(self, path: str) -> bool:
        return os.path.exists(self._p(path))

    def size(self, path: str) -> int:
        return os.stat(self._p(path)).st_size

    def read(self, path: str) -> bytes:
        with open(self._p(path), "rb") as f:
            return f.read()

    def open_write(self, path: str, *, append: bool, sync_writes: bool = False) -> OsFile:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        flags |= os.O_APPEND if append else os.O_TRUNC
        if sync_writes:
            flags |= os.O_DSYNC
        return OsFile(os.open(self._p(path), flags, PRIVATE_FILE_MODE), path, sync_writes)

    def open_update(self, path: str, *, sync_writes: bool = False) -> OsFile:
        # Not O_APPEND: on Linux, pwrite to an O_APPEND file ignores its offset.
        flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_DSYNC if sync_writes else 0)
        return OsFile(os.open(self._p(path), flags), path, sync_writes)

    def rename(self, src: str, dst: str) -> None:
        os.rename(self._p(src), self._p(dst))

    def unlink(self, path: str) -> None:
        os.unlink(self._p(path))

    def fsync_dir(self, path: str) -> None:
        fd = os.open(self._p(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def check_writable(self, path: str) -> None:
        full = self._p(path)
        if not os.access(full, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "directory is not writable", full)


def makedirs_private(path: str) -> None:
    """Creates directory ``path`` and any missing parent, each 0700; an existing one is left as
    it is. One system call when the directory exists (the cache's block writes call it)."""
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent == path:
            raise
        makedirs_private(parent)
        try:
            os.mkdir(path, PRIVATE_DIR_MODE)
        except FileExistsError:  # made meanwhile by another thread
            if not os.path.isdir(path):
                raise


def join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


@contextmanager
def _synced(storage: Storage, path: str, *, append: bool) -> Iterator[FileHandle]:
    """``path`` open for writing; fsynced if the block succeeds, closed either way."""
    handle = storage.open_write(path, append=append)
    try:
        yield handle
        handle.fsync()
    finally:
        handle.close()


def write_durably(storage: Storage, path: str, data: bytes) -> None:
    """Write a whole file under a temporary name, fsync it, rename it into place, fsync the
    directory: after a crash the file is either absent or complete."""
    folder = dirname(path)
    tmp = join(folder, ".tmp-" + path.rsplit("/", 1)[-1])
    with _synced(storage, tmp, append=False) as handle:
        handle.write(data)
    storage.rename(tmp, path)
    storage.fsync_dir(folder)


def create_durably(storage: Storage, path: str, data: bytes) -> FileHandle:
    """Create ``path`` holding ``data``, durable with its directory entry; returns it open for
    appending small durable writes."""
    handle = storage.open_write(path, append=False, sync_writes=True)
    handle.write(data)
    handle.fsync()
    storage.fsync_dir(dirname(path))
    return handle


def truncate_durably(storage: Storage, path: str, size: int) -> None:
    """Cut ``path`` to ``size`` bytes and fsync it: after a crash it is cut or whole."""
    with _synced(storage, path, append=True) as handle:
        handle.truncate(size)


def unlink_durably(storage: Storage, paths: list[str]) -> None:
    folders = set()
    for path in paths:
        storage.unlink(path)
        folders.add(dirname(path))
    for folder in sorted(folders):
        storage.fsync_dir(folder)

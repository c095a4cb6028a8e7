"""A local directory as an under file system: a local disk, an NFS or SMB mount, any path.

It never reaches outside its root: every path is resolved (symlinks included) and refused if it
lands outside, so neither ``..`` nor a symlink pointing elsewhere exposes other files. Writes go
to a temporary file in the target directory, are fsynced and renamed over the target, and the
directory is fsynced: a reader sees the old file or the new one, and a crash leaves one of them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ufs.atomic import fsync_dir, write_atomically
from ufs.base import UfsStatus, UnderFS, join, normalize
from ufs.errors import (
    UfsAccessDenied,
    UfsError,
    UfsExists,
    UfsInvalidPath,
    UfsIsADirectory,
    UfsNotADirectory,
    UfsNotEmpty,
    UfsNotFound,
)

CHUNK = 1 << 20
TEMP_PREFIX = ".shoal-tmp-"

_ERRNO = {
    errno.ENOENT: UfsNotFound,
    errno.EEXIST: UfsExists,
    errno.ENOTEMPTY: UfsNotEmpty,
    errno.ENOTDIR: UfsNotADirectory,
    errno.EISDIR: UfsIsADirectory,
    errno.EACCES: UfsAccessDenied,
    errno.EPERM: UfsAccessDenied,
}


class LocalUnderFS(UnderFS):
    def __init__(self, root: str) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise UfsNotFound(f"local UFS root {root} is not a directory")
        self.root = real
        self.uri = f"file://{real}"

    def _full(self, path: str) -> str:
        """The real path for ``path``, refused if it (or, for a new name, its parent) resolves
        outside the root."""
        rel = normalize(path)
        full = os.path.join(self.root, rel) if rel else self.root
        real = os.path.realpath(full)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise UfsInvalidPath(f"{self.uri}: {path!r} leads outside the UFS root")
        return full

    @contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        try:
            yield
        except UfsError:
            raise
        except OSError as exc:
            cls = _ERRNO.get(exc.errno or 0, UfsError)
            raise cls(f"{self.uri}: {path or '/'}: {exc.strerror or exc}") from exc

    def _status(self, rel: str, st: os.stat_result) -> UfsStatus:
        if stat.S_ISDIR(st.st_mode):
            return UfsStatus(rel, True, 0, st.st_mtime_ns, "")
        return UfsStatus(
            rel, False, st.st_size, st.st_mtime_ns, f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}"
        )

    def stat(self, path: str) -> UfsStatus:
        rel = normalize(path)
        with self._errors(rel):
            return self._status(rel, os.stat(self._full(rel)))

    def list(self, path: str) -> Iterator[UfsStatus]:
        rel = normalize(path)
        full = self._full(rel)
        with self._errors(rel):
            it = os.scandir(full)
        return self._entries(rel, it)

    def _entries(self, rel: str, it: Iterator[os.DirEntry[str]]) -> Iterator[UfsStatus]:
        with self._errors(rel), it as entries:  # type: ignore[attr-defined]
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                child = join(rel, entry.name)
                try:
                    if entry.is_symlink():
                        self._full(child)  # a link out of the root is not part of this UFS
                    st = entry.stat()
                except (UfsInvalidPath, FileNotFoundError):
                    continue
                yield self._status(child, st)

    def read(self, path: str, offset: int, length: int) -> bytes:
        rel = normalize(path)
        with self._errors(rel):
            fd = os.open(self._full(rel), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
                return os.pread(fd, length, offset)
            finally:
                os.close(fd)

    def write(self, path: str, source: BinaryIO) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        parent, _, name = rel.rpartition("/")
        with self._errors(rel):
            self.mkdir(parent)
            folder = self._full(parent)
            if os.path.isdir(self._full(rel)):
                raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
            chunks = iter(lambda: source.read(CHUNK), b"")
            write_atomically(os.path.join(folder, name), chunks, temp_prefix=TEMP_PREFIX)
            return self.stat(rel)

    def delete(self, path: str) -> None:
        rel = normalize(path)
        with self._errors(rel):
            full = self._full(rel)
            if os.path.isdir(full) and not os.path.islink(full):
                raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
            os.unlink(full)
            fsync_dir(os.path.dirname(full))

    def mkdir(self, path: str) -> None:
        rel = normalize(path)
        with self._errors(rel):
            full = self._full(rel)
            if os.path.isdir(full):
                return
            os.makedirs(full, exist_ok=True)
            fsync_dir(os.path.dirname(full))

    def rmdir(self, path: str) -> None:
        rel = normalize(path)
        if not rel:
            raise UfsInvalidPath(f"{self.uri}: the root cannot be removed")
        with self._errors(rel):
            full = self._full(rel)
            os.rmdir(full)
            fsync_dir(os.path.dirname(full))

    def rename(self, src: str, dst: str) -> None:
        a, b = normalize(src), normalize(dst)
        with self._errors(a):
            full_a, full_b = self._full(a), self._full(b)
            if os.path.isdir(full_a):
                raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
            self.mkdir(b.rpartition("/")[0])
            os.rename(full_a, full_b)
            fsync_dir(os.path.dirname(full_b))
            if os.path.dirname(full_a) != os.path.dirname(full_b):
                fsync_dir(os.path.dirname(full_a))

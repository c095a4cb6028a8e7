"""Replacing a file atomically on a local file system: the one crash-safe write sequence used
by the local connector, the cache's tiers and the credentials file.

Write to a temporary name in the same directory, fsync, rename over the target, fsync the
directory: after a crash the target is the old file or the new one, never a mix, and a
leftover temporary file is the only trace (the local connector names its own so that they can be
told from a user's files and removed: ufs/tempfiles.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(
    target: str,
    chunks: Iterable[bytes | memoryview],
    *,
    temp_prefix: str = ".tmp-",
    temp_name: str | None = None,
    mode: int = 0o644,
    sync: bool = True,
    finish: Callable[[int], None] | None = None,
) -> None:
    """Replaces ``target`` with the concatenated ``chunks`` (read lazily, so a large source is
    never whole in memory). The temporary file is ``temp_name`` if given, else ``temp_prefix``
    and a random tag; it is created with O_EXCL, so it never opens a file that was there. A
    failure before the rename (a full disk at a write, at fsync, or at close on NFS) removes
    it. With ``sync`` false (memory-backed directories) nothing is fsynced. ``finish`` is
    called with the temporary file's descriptor once its bytes are written, before it is
    fsynced and renamed: what it sets (owner, mode, times) arrives with the content.
    """
    folder = os.path.dirname(target)
    temp = os.path.join(folder, temp_name or f"{temp_prefix}{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if finish is not None:
                finish(fd)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:  # the first error is the one to report; a sweep removes it later
            pass
        raise
    if sync:
        fsync_dir(folder)

"""A Shoal home directory: its layout and the lock that keeps a second process out."""

from __future__ import annotations

import errno
import fcntl
import os

from engine.errors import HomeLocked, InvalidArgument

JOURNAL_DIR = "journal"
LOCK_FILE = "lock"
CONFIG_FILE = "shoal.toml"


def resolve_home(home: str | None) -> str:
    path = home or os.environ.get("SHOAL_HOME")
    if not path:
        raise InvalidArgument("no Shoal home: pass --home DIR or set SHOAL_HOME")
    return os.path.abspath(path)


class HomeLock:
    """An exclusive flock on <home>/lock, held while a process has the home open."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.fd: int | None = None

    def acquire(self) -> None:
        os.makedirs(self.home, exist_ok=True)
        path = os.path.join(self.home, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise HomeLocked(
                    f"Shoal home {self.home} is in use by process {holder}; stop it (or use"
                    " its admin channel) before opening the home again"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

"""``fsspec.filesystem("shoal", mountpoint=MNT)``: a running daemon's namespace, read without
going through FUSE (docs/client.md).

Paths are absolute under the mountpoint (as the mount shows them), relative to the mount's
root, or ``shoal://`` URLs of either; names come back absolute under the mountpoint, so what
``ls`` and ``find`` list opens as it is, through this client or through the mount. Without a
mountpoint (``home=`` only), paths are the namespace's own (``/train/x``).
"""

from __future__ import annotations

import datetime
import errno
import os
import resource
import stat
from typing import Any

from fsspec.spec import AbstractFileSystem

from cli.client.connection import Connection
from cli.client.files import ShoalFile, read_range
from fuse import clientwire as W
from fuse.mountinfo import shoal_mounts

PROTOCOL = "shoal"


def default_max_open() -> int:
    """Block descriptors a client keeps open between opens: half of what the process may
    open, at most 16384 (a DataLoader worker has other files to open too)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 16384 if soft == resource.RLIM_INFINITY else soft // 2
    return max(16, min(16384, limit))


def home_of(mountpoint: str) -> str:
    """The home of the daemon serving ``mountpoint`` (from the kernel's mount table)."""
    entry = shoal_mounts().get(mountpoint)
    if entry is None:
        raise FileNotFoundError(errno.ENOENT, f"{mountpoint} is not a Shoal mount", mountpoint)
    return entry[0]


def sockets_of(home: str) -> list[str]:
    """Where the daemon of ``home`` may listen (fuse/clientwire.py), in the order it prefers."""
    found = [W.run_socket(home)] if W.trusted_run_dir() else []
    return found + [W.home_socket(os.path.abspath(home))]


class ShoalFileSystem(AbstractFileSystem):
    protocol = PROTOCOL
    root_marker = "/"

    def __init__(
        self,
        mountpoint: str | None = None,
        home: str | None = None,
        max_open: int | None = None,
        **kwargs: Any,
    ) -> None:
        """``mountpoint``: a Shoal mount on this machine; or ``home``: the home of a running
        daemon. ``max_open``: block descriptors kept open between opens of a file."""
        super().__init__(**kwargs)
        if mountpoint is None and home is None:
            raise ValueError("ShoalFileSystem needs the mountpoint of a Shoal mount (or home=)")
        self.mountpoint = os.path.abspath(mountpoint) if mountpoint is not None else None
        self._prefix = (self.mountpoint or "").rstrip("/") + "/"
        if home is None:
            assert self.mountpoint is not None
            home = home_of(self.mountpoint)
        self.home = home
        self.conn = Connection(sockets_of(home), max_open or default_max_open())

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path)
        if path.startswith(PROTOCOL + "://"):
            path = path[len(PROTOCOL) + 3 :]
        return path.rstrip("/") or "/"

    # -- paths -----------------------------------------------------------------------------

    def namespace_path(self, path: str) -> str:
        """The namespace path that ``path`` (as this file system takes it) names."""
        path = self._strip_protocol(path)
        if "//" in path or "/." in path or path.startswith("."):
            path = os.path.normpath(path)  # rare: string work is most of a warm open's cost
        mnt = self.mountpoint
        if mnt is None or not path.startswith("/"):
            return "/" + path.lstrip("/") if path != "." else "/"
        if path.startswith(self._prefix):
            return path[len(self._prefix) - 1 :]
        if path == mnt:
            return "/"
        return path  # absolute elsewhere: a namespace path

    def _name(self, ns_path: str) -> str:
        if self.mountpoint is None:
            return ns_path
        return self.mountpoint if ns_path == "/" else self.mountpoint.rstrip("/") + ns_path

    def _entry(self, ns_path: str, attrs: list[int]) -> dict[str, Any]:
        ino, mode, uid, gid, size, mtime, _version, nlink = attrs
        if stat.S_ISDIR(mode):
            kind = "directory"
        elif stat.S_ISREG(mode):
            kind = "file"
        else:
            kind = "other"
        return {
            "name": self._name(ns_path), "size": size, "type": kind, "mode": mode,
            "uid": uid, "gid": gid, "mtime": mtime / 1e9, "ino": ino, "nlink": nlink,
            "islink": stat.S_ISLNK(mode),
        }  # fmt: skip

    # -- fsspec's interface ----------------------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        ns = self.namespace_path(path)
        attrs, _ = self.conn.call(W.STAT, os.fsencode(ns))
        return self._entry(ns, attrs)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        ns = self.namespace_path(path)
        try:
            listed, _ = self.conn.call(W.LIST, os.fsencode(ns))
        except NotADirectoryError:
            entries = [self.info(path)]  # fsspec's ls of a file: that file
        else:
            base = ns.rstrip("/") + "/"
            entries = [self._entry(base + os.fsdecode(name), attrs) for name, attrs in listed]
        return entries if detail else [e["name"] for e in entries]

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ShoalFile:
        if mode != "rb":
            raise PermissionError(errno.EROFS, f"the Shoal client only reads (mode {mode!r})")
        opened = self.conn.open(self.namespace_path(path))
        return ShoalFile(self.conn, opened, path)

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        opened = self.conn.open(self.namespace_path(path))
        lo = 0 if start is None else (start if start >= 0 else max(0, opened.size + start))
        hi = opened.size if end is None else (end if end >= 0 else max(0, opened.size + end))
        return read_range(self.conn, opened, lo, max(0, hi - lo))

    def modified(self, path: str) -> datetime.datetime:
        mtime = self.info(path)["mtime"]
        return datetime.datetime.fromtimestamp(mtime, tz=datetime.UTC)

    def ukey(self, path: str) -> str:
        """Changes whenever the file's content does (its inode and content version)."""
        ns = self.namespace_path(path)
        attrs, _ = self.conn.call(W.STAT, os.fsencode(ns))
        return f"{attrs[0]}-{attrs[6]}-{attrs[4]}"

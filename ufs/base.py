"""The connector contract every under file system implements.

Paths are relative to the connector's root: ``""`` is the root, components are separated by
``/``, and there is never a leading or trailing slash (``normalize`` makes them so and refuses
``..``, ``.`` and NUL). A directory's listing is a stream: connectors yield entries as they get
them, so a directory of a million objects is never held in memory at once. Listing order is
unspecified. Every method may raise a ``ufs.errors.UfsError``; nothing else escapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from threading import Event
from typing import BinaryIO

from ufs.errors import UfsInvalidPath


@dataclass(frozen=True, slots=True)
class UfsStatus:
    path: str
    is_dir: bool
    size: int  # 0 for directories
    mtime_ns: int  # 0 when the store has none (S3 implicit directories)
    # Changes whenever the content does (size + mtime + ETag or inode); "" for directories.
    fingerprint: str
    # The user.* extended attributes, where a listing has them cheaply (a local store); None
    # where it did not look (S3: one request per object).
    xattrs: Mapping[str, bytes] | None = None

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


def normalize(path: str) -> str:
    """The canonical form of a connector path; raises UfsInvalidPath."""
    if "\0" in path:
        raise UfsInvalidPath(f"path {path!r} contains a NUL byte")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise UfsInvalidPath(f"path {path!r}: '{part}' is not allowed in a UFS path")
    return "/".join(parts)


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class UnderFS(ABC):
    """One mounted store. Thread-safe: the engine calls it from many worker threads."""

    uri: str

    @abstractmethod
    def stat(self, path: str) -> UfsStatus:
        """The file or directory at ``path``; UfsNotFound if there is none."""

    @abstractmethod
    def list(self, path: str) -> Iterator[UfsStatus]:
        """The direct children of directory ``path``, streamed. UfsNotFound if it does not
        exist, UfsNotADirectory if it is a file."""

    @abstractmethod
    def read(self, path: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end of the file, none past it)."""

    def read_stream(self, path: str, offset: int, length: int) -> Iterator[bytes]:
        """The bytes ``read`` returns, in order, as they arrive: a reader of the start of a
        range has its bytes before the rest has come. Connectors whose reads are requests
        over a network yield chunks; this default yields one ``read``."""
        data = self.read(path, offset, length)
        if data:
            yield data

    @abstractmethod
    def write(self, path: str, source: BinaryIO) -> UfsStatus:
        """Creates or replaces file ``path`` with everything ``source`` yields, read in chunks
        (large files in several parts). Readers see the old content or the new, never a mix.
        Parent directories are created as needed."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Removes file ``path``; UfsNotFound if it is not there, UfsIsADirectory for a dir."""

    @abstractmethod
    def mkdir(self, path: str) -> None:
        """Creates directory ``path`` and its missing parents; an existing directory is fine."""

    @abstractmethod
    def rmdir(self, path: str) -> None:
        """Removes empty directory ``path``; UfsNotEmpty if it has children."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Moves file ``src`` to ``dst``, replacing a file there. On object stores this is a
        copy then a delete: not atomic, and it costs a copy of the data."""

    # Extended attributes (user.* only; the engine keeps them, and hands them to the store).

    def check_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:  # noqa: B027
        """Raises UfsUnsupported (saying why) if the store could not keep ``xattrs`` on
        ``path``; called before they are accepted, also for a file not yet written."""

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        """The user.* extended attributes the store keeps on ``path``; none by default."""
        return {}

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:  # noqa: B027
        """Makes ``xattrs`` the user.* extended attributes of ``path``, replacing the ones it
        had. The default keeps none: the namespace alone holds them."""

    def leftovers(self) -> Sequence[str]:
        """The paths of what ``clean_leftovers`` would remove now (a report: fsck); none by
        default."""
        return []

    def clean_leftovers(self, stop: Event | None = None) -> int:
        """Removes what writes of processes that died left in the store (the local connector:
        temporary files) and returns how many; stops early once ``stop`` is set. Safe while
        other processes write. Runs in the background when a writable mount is opened. The
        default has nothing to remove."""
        return 0

    def close(self) -> None:  # noqa: B027 - most connectors hold nothing to release
        """Releases connections."""

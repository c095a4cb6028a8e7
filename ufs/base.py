"""The connector contract every under file system implements.

Paths are relative to the connector's root: ``""`` is the root, components are separated by
``/``, and there is never a leading or trailing slash (``normalize`` makes them so and refuses
``..``, ``.`` and NUL). A directory's listing is a stream: connectors yield entries as they get
them, so a directory of a million objects is never held in memory at once. Listing order is
unspecified. Every method may raise a ``ufs.errors.UfsError``; nothing else escapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from threading import Event
from typing import BinaryIO

from ufs.errors import UfsError, UfsInvalidName, UfsInvalidPath, UfsNameTooLong
from ufs.staged import StagedWrite

NAME_MAX = 255  # bytes of one name on most local file systems (and POSIX's portable limit)


@dataclass(frozen=True, slots=True)
class UfsStatus:
    path: str
    is_dir: bool
    size: int  # 0 for directories
    mtime_ns: int  # 0 when the store has none (S3 implicit directories)
    # Changes whenever the content does (size + mtime + ETag or inode); "" for directories.
    fingerprint: str
    # A special file's type bits (stat.S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK), 0 for a regular
    # file or a directory; a device's number (docs/mount.md: what each store holds for them).
    special: int = 0
    rdev: int = 0
    _: KW_ONLY  # the optional attributes below are given by keyword only
    # The owner and permission bits (0o7777) the store keeps; None where it keeps none (an S3
    # object without POSIX metadata, an implicit directory): the engine's defaults then apply.
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    # The user.* extended attributes, where a listing has them cheaply (a local store); None
    # where it did not look (S3: one request per object; stat). Not compared: a listing's
    # status and a stat's of the same file are equal.
    xattrs: Mapping[str, bytes] | None = field(default=None, compare=False)
    # False where the store may keep an owner, mode and mtime this status does not show: an
    # S3 listing reads no object metadata (a HEAD per object would double a cold epoch's
    # requests); the object's first GET, or a stat, brings them.
    attrs_known: bool = True

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class NameRules:
    """The names a store can hold, known without asking it: the engine checks a new name
    against them before anything reaches the store or the journal (an S3 key too long fails
    only at its upload, long after a ``create`` was answered).

    Paths are connector paths; names are str whose bytes that are not UTF-8 are lone
    surrogates (``os.fsdecode``'s surrogateescape)."""

    name_max: int = NAME_MAX  # bytes of one path component
    key_max: int | None = None  # bytes of the whole key the store sees; None: no limit
    key_base: int = 0  # bytes the store puts before a connector path (S3: "<prefix>/")
    dir_suffix: int = 0  # bytes a directory's own key adds (S3: its marker's trailing "/")
    utf8: bool = False  # names must be UTF-8 (S3 keys); else any bytes but "/" and NUL

    def check(self, path: str, is_dir: bool = False) -> None:
        """Raises UfsInvalidName or UfsNameTooLong if the store cannot hold ``path``."""
        if path.isascii():
            raw = path.encode("ascii")
        else:
            try:
                raw = path.encode("utf-8") if self.utf8 else path.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise UfsInvalidName(
                    f"{path!r}: this store takes only UTF-8 names; rename it to UTF-8"
                    if self.utf8
                    else f"{path!r} holds characters that stand for no bytes"
                ) from None
        for part in raw.split(b"/"):
            if len(part) > self.name_max:
                raise UfsNameTooLong(
                    f"a name of {len(part)} bytes is longer than this store's {self.name_max}"
                )
        if self.key_max is not None:
            size = self.key_base + len(raw) + (self.dir_suffix if is_dir else 0)
            if size > self.key_max:
                raise UfsNameTooLong(
                    f"{path[:60]!r}...: its key would be {size} bytes, over this store's"
                    f" {self.key_max}"
                )


@dataclass(frozen=True, slots=True)
class UfsAttrs:
    """Ownership, permission bits and modification time to give a file or directory in the
    store; None leaves the store's own (or its default, for a new one)."""

    mode: int | None = None  # permission bits only: the type is the store's
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int | None = None

    def empty(self) -> bool:
        return (
            self.mode is None and self.uid is None and self.gid is None and (self.mtime_ns is None)
        )


# Told the status of the file a read's bytes come from (``UnderFS.read_stream``).
OnStatus = Callable[[UfsStatus], None]


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
    rules: NameRules = NameRules()  # what names it can hold; connectors set their own
    # Whether ``list`` reads the owners and modes the store keeps (False: some of its
    # statuses say ``attrs_known=False``; a ``stat`` reads them).
    lists_attrs: bool = True

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

    def read_checked(self, path: str, offset: int, length: int) -> tuple[bytes, str | None]:
        """``read``, with the fingerprint of the very file the bytes came from (None where the
        connector cannot tell without another request): the cache keeps bytes under a version
        only if they are that version's, not a later change's that metadata has not seen."""
        return self.read(path, offset, length), None

    def read_resident(self, path: str, offset: int, length: int) -> tuple[bytes, str] | None:
        """``read_checked`` if it can be answered without waiting at all (no disk, no network,
        no lock held by another: the event loop calls it), else None at once. Only connectors
        whose reads are system calls on files the kernel may hold have such reads; the default
        has none."""
        return None

    def read_stream(
        self, path: str, offset: int, length: int, on_status: OnStatus | None = None
    ) -> Iterator[bytes]:
        """The bytes ``read`` returns, in order, as they arrive: a reader of the start of a
        range has its bytes before the rest has come. Connectors whose reads are requests
        over a network yield chunks; this default yields one ``read``. ``on_status`` is called
        once, before the first bytes, with the status of the very file they come from where
        the read's reply shows it (S3: a GET's headers carry the object's size, ETag and user
        metadata); a connector that learns nothing from a read never calls it."""
        data = self.read(path, offset, length)
        if data:
            yield data

    @abstractmethod
    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        """Creates or replaces file ``path`` with everything ``source`` yields, read in chunks
        (large files in several parts). Readers see the old content or the new, never a mix.
        Parent directories are created as needed. The new file gets ``attrs`` where the store
        keeps them (with its content, not after it: no reader sees it with other ones)."""

    def stage(self, path: str, spool_dir: str | None = None) -> StagedWrite | None:
        """A temporary file the bytes of a new ``path`` can be written into as they come,
        landed by ``land`` (ufs/staged.py); None where the store has no such thing (its bytes
        are handed to ``write`` whole). ``spool_dir``: where the caller spools, for a store
        that uploads from a local spool as it fills (S3: ufs/s3parts.py)."""
        return None

    def land(self, staged: StagedWrite, path: str, attrs: UfsAttrs | None = None) -> UfsStatus:
        """``staged``'s bytes made ``path``'s content, as ``write`` would have made them."""
        raise UfsError(f"{self.uri}: this store stages no writes")

    @abstractmethod
    def delete(self, path: str) -> None:
        """Removes file ``path``; UfsNotFound if it is not there, UfsIsADirectory for a dir."""

    @abstractmethod
    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        """Creates directory ``path`` and its missing parents; an existing directory is fine.
        A directory this call creates at ``path`` gets ``attrs`` where the store keeps them."""

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        """Gives file or directory ``path`` the attributes ``attrs`` names (chmod, chown,
        utimens) and returns its status after. A store that keeps none of them changes
        nothing (the default). One that cannot change the owner (a local store served by
        a user other than root) keeps its own and says so once in the log."""
        return self.stat(path)

    @abstractmethod
    def rmdir(self, path: str) -> None:
        """Removes empty directory ``path``; UfsNotEmpty if it has children."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Moves file ``src`` to ``dst``, replacing a file there. On object stores this is a
        copy then a delete: not atomic, and it costs a copy of the data."""

    def link(self, src: str, dst: str) -> UfsStatus:
        """Makes ``dst`` hold file ``src``'s content too, replacing a file there: a real hard
        link where the store has them, else a copy (two independent objects); its status.
        UfsNotFound if ``src`` is not there, UfsIsADirectory for a directory."""
        raise UfsError(f"{self.uri}: this store cannot link {src} to {dst}")

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        """Creates special file ``path`` of ``mode``'s type (a fifo, a socket, a character or
        block device numbered ``rdev``), with ``attrs`` where the store keeps them; its status.
        UfsExists if the name is taken."""
        raise UfsError(f"{self.uri}: this store cannot hold special file {path}")

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

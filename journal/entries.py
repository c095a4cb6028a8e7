"""Journal entries: the facts from which all of Shoal's state is rebuilt.

Each entry type is a NamedTuple with a fixed type code. Its payload on disk is the msgpack array
of its fields in declaration order, so a tuple is encoded as is and decoded without building a
dict. Entries are self-contained: every id, timestamp (integer nanoseconds) and size the apply
function needs is inside, so replaying them reproduces the live state exactly.

Compatibility rules (docs/journal.md): a type code is never reused; new fields are only appended
at the end with a default, so an older entry (shorter array) still decodes; a type code this
version does not know stops recovery with UnknownEntryType instead of being skipped.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from journal import fsnames
from journal.errors import MalformedEntry, UnknownEntryType


class MkDir(NamedTuple):
    id: int
    parent: int
    name: str
    mode: int
    uid: int
    gid: int
    time: int


class CreateFile(NamedTuple):
    """A file: regular, or special where ``mode``'s type bits say so (a fifo, a socket, a
    character or block device numbered ``rdev``); any other type bits make a regular file."""

    id: int
    parent: int
    name: str
    mode: int
    uid: int
    gid: int
    time: int
    rdev: int = 0  # appended last: entries written before it decode with 0


class CompleteFile(NamedTuple):
    """The file's content is final: its length and the blocks that hold it.

    The file's block ids are (id, version, index) for index in range(ceil(length / block_size)).
    """

    id: int
    length: int
    block_size: int
    time: int


class SetAttr(NamedTuple):
    """Changes the given attributes; a None field is left as it is.

    ``ttl_ms`` -1 clears the TTL; ``size`` truncates or extends (a new content version).
    """

    id: int
    time: int
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mtime: int | None = None
    pinned: bool | None = None
    media: list[str] | None = None
    ttl_ms: int | None = None
    ttl_action: str | None = None
    size: int | None = None
    # Per-path read and write types for this inode and (a directory's) descendants; "" clears.
    # Appended last: entries written before they existed decode with None.
    read_type: str | None = None
    write_type: str | None = None
    # A file's UFS copy after a change of its attributes alone reached it (utimens on a local
    # store moves its fingerprint): the same content, so no new version. Appended last.
    fingerprint: str | None = None
    # An explicit access time (utimensat, touch -a). Appended last: older entries decode None.
    atime: int | None = None


class Rename(NamedTuple):
    """Moves ``id`` from (src_parent, src_name) to (dst_parent, dst_name).

    ``replaced`` is the id of the file or empty directory at the destination that the rename
    removes, or None.

    ``stale``: set when the moved file is not persisted and the store may still hold, under
    the destination name, a copy that is not its content (the replaced file's, removed from
    the store only once this entry is journaled): that copy's fingerprint, or ``STALE_COPY``
    when it is not known. The moved file takes it as its UFS fingerprint, which for a file not
    persisted means "the store may hold an older copy under my name": its next delete or
    rename removes that copy, and no listing takes it for the file's content. Appended last:
    older entries decode with None and replay as before.

    ``store_from``: below a mount, the store path the moved node's persisted content is still
    to be moved from (a persisted file's own path, or a directory's): the store is changed
    only after this entry, and apply records a *pending store move* (of the file, or of the
    directory and of every persisted file below it) that a StoreMoved ends. Until then reads
    go to the old path and listings neither drop the node nor load the old path as a new one
    (engine/storemove.py). Appended last: older entries decode with None.
    """

    id: int
    src_parent: int
    src_name: str
    dst_parent: int
    dst_name: str
    time: int
    replaced: int | None = None
    stale: str | None = None
    store_from: str | None = None
    # The replaced file is open: it lives on, nameless, as an orphan until an OrphanReleased.
    orphan: bool = False


# Rename.stale when the replaced file's copy has no fingerprint the state knows (its upload
# was pending: one may have landed). Never a fingerprint a store gives, nor a listing mark.
STALE_COPY = "shoal-stale-copy"


class Delete(NamedTuple):
    """Removes the name ``name`` in ``parent`` of ``id``, and ``id`` itself with its last name
    (a file with other hard links keeps those); a directory goes with everything below it.

    ``orphan``: the file loses its last name while open, so it lives on without a name (its
    attributes, its blocks) until an OrphanReleased; only ever set for that case. Appended
    last: older entries decode with False."""

    id: int
    parent: int
    name: str
    time: int
    orphan: bool = False


class OrphanReleased(NamedTuple):
    """Orphan ``id`` (a file unlinked while open) goes with its blocks: its last handle was
    closed, or start-up found it (no handle survives a restart)."""

    id: int
    time: int


class Link(NamedTuple):
    """A hard link: file ``id`` (never a directory) is also ``name`` in ``parent``. A Delete
    or Rename names the one (parent, name) it changes; the file goes with its last name."""

    id: int
    parent: int
    name: str
    time: int


class Symlink(NamedTuple):
    id: int
    parent: int
    name: str
    target: str
    uid: int
    gid: int
    time: int


class AddMount(NamedTuple):
    """Attaches a UFS at directory ``id``. ``options`` never holds secrets: those live in the
    home's credentials file under the name ``credential``."""

    id: int
    uri: str
    options: dict[str, str]
    readonly: bool
    credential: str | None
    time: int


class RemoveMount(NamedTuple):
    id: int
    time: int


class UfsFingerprint(NamedTuple):
    """The UFS copy of ``id`` was seen with this fingerprint; a change starts a new content
    version, so blocks cached from the old content can never be served."""

    id: int
    fingerprint: str
    size: int
    mtime: int
    time: int
    block_size: int = 0  # the file's block size, when it has none yet (0: leave it)
    # A write through the UFS replaced the file's content: a new content version even where
    # the file had no fingerprint (its content was only in the cache). Appended last: older
    # entries decode with False, and replay them as before.
    new_content: bool = False
    # The owner, mode and mtime the store keeps for this copy were not read with it (an S3
    # listing reads no object metadata): the file holds provisional ones until an entry of
    # the store's own completes them. Appended last: older entries decode with False.
    provisional: bool = False


class BlockCached(NamedTuple):
    """Block ``idx`` of ``version`` of ``file`` is cached in ``tier``. ``version`` is the file's
    current one, or the one above it: a block *staged* by a rewrite, never served until a
    ContentCommitted makes that version the file's content."""

    file: int
    version: int
    idx: int
    tier: str
    length: int
    checksum: int
    time: int


class BlockMoved(NamedTuple):
    file: int
    version: int
    idx: int
    tier: str
    time: int


class BlockRemoved(NamedTuple):
    file: int
    version: int
    idx: int
    time: int


class PersistRequested(NamedTuple):
    id: int
    version: int
    time: int


class Persisted(NamedTuple):
    id: int
    version: int
    fingerprint: str
    time: int


class StoreMoved(NamedTuple):
    """The pending store move of ``id`` (recorded by a Rename's ``store_from``) is done: its
    content is at its current path, or was superseded since and its old copy removed."""

    id: int
    time: int


class ContentCommitted(NamedTuple):
    """A rewrite's staged content becomes the file's, atomically: the file moves to
    ``version`` (one above its current one), whose blocks 0 … ceil(length / block_size) - 1
    are all staged already (BlockCached); the old version's blocks go, and the file is
    complete, ``length`` bytes long, not persisted (``persist``: its upload is pending)."""

    id: int
    version: int
    length: int
    block_size: int
    persist: bool
    time: int


class StoreCopy(NamedTuple):
    """The store may hold a copy under file ``id``'s name that is not its content: written
    before a write through the UFS over a file the state knows no copy of, so that a crash
    between the object landing and the write's own entry leaves the copy remembered (the
    file's next delete or rename removes it; the listing does not take it for the content).
    ``fingerprint``: the copy's, or STALE_COPY when unknown."""

    id: int
    fingerprint: str
    time: int


class SetXattr(NamedTuple):
    """Sets extended attribute ``name`` of ``id`` to ``value``, or removes it (``value``
    None). Only ``user.*`` names: the others are refused before anything is journaled."""

    id: int
    name: str
    value: bytes | None
    time: int


class Accessed(NamedTuple):
    """A read moved ``id``'s access time to ``atime`` (relatime): unlike SetAttr it leaves the
    change time alone, and nobody waits for it to be durable."""

    id: int
    atime: int


class PathConfSet(NamedTuple):
    """Per-path defaults (engine/pathconf.py): each key of ``values`` is set for the path
    prefix ``prefix`` (an absolute, normalized namespace path) and everything below it, or
    unset (None). Kept by path string, as Alluxio's path configuration is: a rename of a
    configured directory leaves the configuration at the old path."""

    prefix: str
    values: dict[str, str | None]
    time: int


Entry = (
    MkDir
    | CreateFile
    | CompleteFile
    | SetAttr
    | Rename
    | Delete
    | Symlink
    | AddMount
    | RemoveMount
    | UfsFingerprint
    | BlockCached
    | BlockMoved
    | BlockRemoved
    | PersistRequested
    | Persisted
    | ContentCommitted
    | StoreCopy
    | Link
    | SetXattr
    | Accessed
    | StoreMoved
    | OrphanReleased
    | PathConfSet
)

# Type codes are part of the on-disk format: never renumber, never reuse.
TYPE_CODES: dict[Any, int] = {
    MkDir: 1,
    CreateFile: 2,
    CompleteFile: 3,
    SetAttr: 4,
    Rename: 5,
    Delete: 6,
    Symlink: 7,
    AddMount: 8,
    RemoveMount: 9,
    UfsFingerprint: 10,
    BlockCached: 11,
    BlockMoved: 12,
    BlockRemoved: 13,
    PersistRequested: 14,
    Persisted: 15,
    ContentCommitted: 16,
    StoreMoved: 17,
    StoreCopy: 18,
    Link: 19,
    OrphanReleased: 20,
    SetXattr: 21,
    Accessed: 22,
    PathConfSet: 23,
}
BY_CODE: dict[int, Any] = {code: cls for cls, code in TYPE_CODES.items()}
BY_NAME: dict[str, Any] = {cls.__name__: cls for cls in TYPE_CODES}
# code -> (class, number of fields): what replay's inlined decoder checks a payload against.
SHAPES: dict[int, tuple[Any, int]] = {
    code: (cls, len(cls._fields)) for code, cls in BY_CODE.items()
}
_REQUIRED = {cls: sum(1 for f in cls._fields if f not in cls._field_defaults) for cls in TYPE_CODES}

# Names that are not UTF-8 go as fsnames.RAW_NAME (docs/journal.md, "Names").
_pack = fsnames.packer()


def type_code(entry: Entry) -> int:
    return TYPE_CODES[type(entry)]


def encode(entry: Entry) -> bytes:
    return _pack(entry)


def decode(code: int, payload: bytes | memoryview, *, where: str = "") -> Any:
    """The entry stored in a record; raises UnknownEntryType or MalformedEntry."""
    cls = BY_CODE.get(code)
    if cls is None:
        raise UnknownEntryType(code, where)
    try:
        fields = msgpack.unpackb(
            payload, use_list=True, raw=False, strict_map_key=False, ext_hook=fsnames.ext_hook
        )
    except (ValueError, msgpack.UnpackException) as exc:
        raise MalformedEntry(f"{where}: {cls.__name__} payload is not msgpack: {exc}") from exc
    if type(fields) is not list:
        raise MalformedEntry(f"{where}: {cls.__name__} payload is not an array")
    n = len(fields)
    if n < _REQUIRED[cls]:
        raise MalformedEntry(f"{where}: {cls.__name__} has {n} fields, needs {_REQUIRED[cls]}")
    if n > len(cls._fields):
        # Written by a newer version that appended fields we cannot honour.
        raise MalformedEntry(
            f"{where}: {cls.__name__} has {n} fields, this shoal knows {len(cls._fields)};"
            " it was written by a newer version"
        )
    return cls(*fields)


def to_dict(entry: Entry) -> dict[str, Any]:
    """A plain dict for dumps: type name plus fields."""
    out: dict[str, Any] = {"type": type(entry).__name__}
    out.update(entry._asdict())
    return out

"""Rules for names and paths in the namespace.

A name is bytes, as in POSIX: in memory a str whose bytes that are not UTF-8 are lone
surrogates (surrogateescape, what ``os.fsdecode`` gives), so ``os.fsencode`` gives the exact
bytes back. The journal stores such names as they are (journal/fsnames.py). What a particular
store accepts beyond this (S3: UTF-8 keys of at most 1,024 bytes) is the store's rule
(ufs/base.py ``NameRules``), checked before a new name reaches it.
"""

from __future__ import annotations

from engine.errors import InvalidArgument, InvalidName, NameTooLong

NAME_MAX = 255


def name_bytes(name: str) -> bytes:
    """The bytes a name stands for; InvalidName if it is not the form ``os.fsdecode`` gives
    (surrogates that stand for no byte, or escapes of bytes that are UTF-8 after all: two
    spellings of one name would be two entries of a directory, one file in the store)."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InvalidName(f"name {name!r} holds characters that stand for no bytes") from None
    if raw.decode("utf-8", "surrogateescape") != name:
        raise InvalidName(f"name {name!r} is escaped bytes that are UTF-8: not a canonical name")
    return raw


def check_name(name: str) -> str:
    """Returns ``name`` if it may be stored in a directory; raises InvalidName/NameTooLong."""
    if not name:
        raise InvalidName("empty file name")
    if name in (".", ".."):
        raise InvalidName(f"{name!r} is not a storable name")
    if "/" in name or "\0" in name:
        raise InvalidName(f"name {name!r} contains '/' or NUL")
    size = len(name) if name.isascii() else len(name_bytes(name))
    if size > NAME_MAX:
        raise NameTooLong(f"name of {size} bytes is longer than {NAME_MAX} bytes")
    return name


def split_path(path: str) -> list[str]:
    """The components of an absolute namespace path; '.' and empty components are dropped."""
    if not path.startswith("/"):
        raise InvalidArgument(f"path {path!r} is not absolute")
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise InvalidArgument(f"path {path!r} contains '..'")
    return parts


def parent_and_name(path: str) -> tuple[list[str], str]:
    parts = split_path(path)
    if not parts:
        raise InvalidArgument("the root directory has no parent")
    return parts[:-1], parts[-1]

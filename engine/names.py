"""Rules for names and paths in the namespace."""

from __future__ import annotations

from engine.errors import InvalidArgument, InvalidName, NameTooLong

NAME_MAX = 255


def check_name(name: str) -> str:
    """Returns ``name`` if it may be stored in a directory; raises InvalidName/NameTooLong."""
    if not name:
        raise InvalidName("empty file name")
    if name in (".", ".."):
        raise InvalidName(f"{name!r} is not a storable name")
    if "/" in name or "\0" in name:
        raise InvalidName(f"name {name!r} contains '/' or NUL")
    size = len(name.encode("utf-8", "surrogateescape"))
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

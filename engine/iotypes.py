"""Read and write types as a table of behaviours (docs/cache.md).

The names are what config, mount options, the journal (SetAttr's read_type / write_type) and the
command line carry, exactly as they are; the engine asks a type what it does, never compares a
name. The dicts keep the order the names are listed in by errors and help.

Write types:

- THROUGH: to the UFS at close, not cached;
- CACHE_THROUGH: to the UFS at close, and cached;
- MUST_CACHE: to the cache only (never evicted, not persisted);
- ASYNC_THROUGH: to the cache, with the persist to the UFS journaled as pending; the persister
  uploads it in the background, and resumes after a crash.

Read types: CACHE (misses are cached), CACHE_PROMOTE (and hits of a lower tier move up),
NO_CACHE (misses are not cached).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import InvalidArgument


@dataclass(frozen=True)
class WriteType:
    name: str
    caches: bool  # the written blocks go to the cache
    writes_ufs_at_close: bool  # the UFS has the bytes when the write returns
    persists_async: bool  # a persist is journaled as pending, uploaded in the background


@dataclass(frozen=True)
class ReadType:
    name: str
    caches: bool  # blocks fetched from a UFS are cached
    promotes: bool  # a block read from a lower tier moves to the highest it may use


WRITE_TYPES: dict[str, WriteType] = {
    t.name: t
    for t in (
        WriteType("MUST_CACHE", caches=True, writes_ufs_at_close=False, persists_async=False),
        WriteType("CACHE_THROUGH", caches=True, writes_ufs_at_close=True, persists_async=False),
        WriteType("THROUGH", caches=False, writes_ufs_at_close=True, persists_async=False),
        WriteType("ASYNC_THROUGH", caches=True, writes_ufs_at_close=False, persists_async=True),
    )
}

READ_TYPES: dict[str, ReadType] = {
    t.name: t
    for t in (
        ReadType("CACHE", caches=True, promotes=False),
        ReadType("CACHE_PROMOTE", caches=True, promotes=True),
        ReadType("NO_CACHE", caches=False, promotes=False),
    )
}

T = TypeVar("T")


def _lookup(table: Mapping[str, T], which: str, name: str) -> T:
    found = table.get(name)
    if found is None:
        raise InvalidArgument(f"unknown {which} {name!r} (one of {', '.join(table)})")
    return found


def write_type(name: str) -> WriteType:
    """The write type named ``name`` (upper case); InvalidArgument for an unknown one."""
    return _lookup(WRITE_TYPES, "write type", name)


def read_type(name: str) -> ReadType:
    """The read type named ``name`` (upper case); InvalidArgument for an unknown one."""
    return _lookup(READ_TYPES, "read type", name)

"""Block checks carried over a clean restart, for volatile tiers.

A cached block is checked (length, CRC-32) at its first read in a process and trusted after
while its file's (size, mtime, inode) stamp is unchanged (engine/cache/blockcache.py). After
a restart every block would be checked again: for a dataset of small files read from the
tiers after a remount, a CRC of every file (~27 µs for 110 KB) and a read of it whole. A block
file in a volatile tier (MEM on /dev/shm: memory, like the daemon's own) changes only through
the file system, which changes its stamp; so a clean stop records the stamps of those blocks
checked so far, and the next start for use trusts each whose file still has its stamp. Disk
tiers are checked anew after every start (a disk may rot while the daemon is down).

The record is a hint, not state: read once and removed at start (a crash leaves none, and the
start after it checks everything), checksummed (a damaged one is ignored), never synced (a
reboot empties the tiers it speaks of).
"""

from __future__ import annotations

import logging
import os
import zlib
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from engine.cache.tiers import BlockKey
from journal.storage import PRIVATE_FILE_MODE
from ufs.atomic import write_atomically

log = logging.getLogger(__name__)

FILE = "cache-checked"  # in the home
MAGIC = b"SHOALCK1"
Stamp = tuple[int, int, int]  # a block file's (size, mtime_ns, inode) when it was checked
_ROW = 6  # file, version, index, size, mtime_ns, inode
_MAX = (1 << 63) - 1
Info = Callable[[BlockKey], Any]  # a block's BlockInfo in the map (tier, length), or None


def save(path: str, stamps: Iterable[tuple[BlockKey, Stamp]]) -> int:
    """Records ``stamps``; returns how many."""
    rows = array("q")
    for key, stamp in stamps:
        values = (*key, *stamp)
        if all(0 <= v <= _MAX for v in values):
            rows.extend(values)
    body = rows.tobytes()
    header = MAGIC + zlib.crc32(body).to_bytes(4, "little")
    write_atomically(path, [header, body], mode=PRIVATE_FILE_MODE, sync=False)
    return len(rows) // _ROW


def load(path: str) -> dict[BlockKey, Stamp]:
    """The stamps a clean stop recorded ({} if none, or a damaged record); the record is
    removed: it speaks only for the start right after that stop."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
    except FileNotFoundError:
        return {}
    head, body = data[: len(MAGIC) + 4], data[len(MAGIC) + 4 :]
    width = _ROW * array("q").itemsize
    if (
        head[: len(MAGIC)] != MAGIC
        or int.from_bytes(head[len(MAGIC) :], "little") != zlib.crc32(body)
        or len(body) % width
    ):
        log.warning("%s is damaged: every cached block is checked at its first read", path)
        return {}
    rows = array("q")
    rows.frombytes(body)
    return {
        (rows[i], rows[i + 1], rows[i + 2]): (rows[i + 3], rows[i + 4], rows[i + 5])
        for i in range(0, len(rows), _ROW)
    }


def restore(path: str, verified: dict[BlockKey, Stamp], info: Info, volatile: set[str]) -> None:
    """Into ``verified`` (a cache's checked stamps): those recorded at the last clean stop for
    blocks still in the map, in a volatile tier, of the length the map says."""
    for key, stamp in load(path).items():
        found = info(key)
        if found is not None and found.tier in volatile and stamp[0] == found.length:
            verified[key] = stamp


def keep(path: str, verified: dict[BlockKey, Stamp], info: Info, volatile: set[str]) -> int:
    """Records the checked stamps of blocks in volatile tiers, at a clean stop."""
    kept = []
    for key, stamp in list(verified.items()):
        found = info(key)
        if found is not None and found.tier in volatile:
            kept.append((key, stamp))
    return save(path, kept)

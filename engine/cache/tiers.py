"""A storage tier of the block cache: one or more directories and a quota.

A block lives in ``<dir>/<file id>/<version>-<index>.blk`` (the directory chosen by the block's
key, so a tier's directories share its blocks). A block file holds exactly the block's bytes:
a 100 KB file's only block takes 100 KB, not a whole block size. Blocks are written to a
temporary name, synced (disk tiers), and renamed into place; on a tier that syncs nothing (the
MEM tier on /dev/shm) straight under the final name, created exclusively. Only then does the
cache journal them. A crash leaves a temporary file or
a block file the journal does not know; both are orphans that reconciliation removes.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.cache.openblocks import OpenBlockFiles
from engine.errors import ShoalError
from journal.storage import PRIVATE_FILE_MODE, makedirs_private
from ufs.atomic import write_atomically

BlockKey = tuple[int, int, int]  # (file id, content version, block index)

TEMP_PREFIX = ".tmp-"
BLOCK_NAME = re.compile(r"^(\d+)-(\d+)\.blk$")
TIER_MARK = ".shoal-tier"  # in each tier directory Shoal may clean (engine/cache/tierclaim.py)


@dataclass(frozen=True)
class TierSpec:
    name: str  # MEM, SSD, HDD: the order of the list is the order of the tiers
    paths: list[str]
    quota_bytes: int  # for the whole tier, shared by its directories
    sync: bool = True  # fsync block files (false for memory-backed directories)
    options: dict[str, str] = field(default_factory=dict)


class TierRefused(OSError):
    """A tier directory its checks refused before a block was written into it (another user's,
    another home's): the block goes to the next tier, as on a full disk."""


class TierStore:
    def __init__(self, spec: TierSpec, take: Callable[[str], None] | None = None) -> None:
        if not spec.paths:
            raise ValueError(f"tier {spec.name} has no directory")
        self.spec = spec
        self.name = spec.name
        self.quota = spec.quota_bytes  # directories are made by the first block written
        self.files = OpenBlockFiles(self.path_of)  # hits read through these
        # Each directory with one separator after it, as os.path.join would add: a hit's block
        # path is then one format, not a join (a first read of a block asks for its path).
        self._roots = [os.path.join(p, "") for p in spec.paths]
        # Before its first block of a run, and again once `shoal cache clear` removed it, each
        # directory is taken (``take``: engine/cache/tierclaim.py ``take_tier_dir``: this
        # user's, and marked as the home's); ``owned``: the directories so taken.
        self.take = take
        self.owned: set[str] = set()

    def _slot(self, key: BlockKey) -> int:
        """Which of the tier's directories holds block ``key``."""
        return (key[0] * 31 + key[2]) % len(self._roots)

    def path_of(self, key: BlockKey) -> str:
        file, version, idx = key
        return f"{self._roots[self._slot(key)]}{file}/{version}-{idx}.blk"

    def write(
        self, key: BlockKey, data: bytes | memoryview, durable: bool = True
    ) -> os.stat_result:
        """Stores the block under its final name, durably on disk tiers unless ``durable`` is
        False: then written only, and synced with its tier's file system before the log syncs
        its entry (journal/datasync.py), or a cached copy a loss only sends to the UFS again.
        The status of the file written (from its descriptor: no second path lookup, nor one
        under a lock)."""
        final = self.path_of(key)
        root = self.spec.paths[self._slot(key)]
        if root not in self.owned:
            self._take(root)
        makedirs_private(os.path.dirname(final))  # 0700, like the home
        if not self.spec.sync:
            st = _write_new(final, data)
            if st is not None:
                self.files.forget(key)
                return st
        written: list[os.stat_result] = []
        write_atomically(
            final, [data], temp_prefix=TEMP_PREFIX, mode=PRIVATE_FILE_MODE,
            sync=self.spec.sync and durable,
            finish=lambda fd: written.append(os.fstat(fd)),
        )  # fmt: skip
        self.files.forget(key)
        return written[0]

    def _take(self, root: str) -> None:
        if self.take is not None:
            try:
                self.take(root)
            except ShoalError as exc:
                raise TierRefused(errno.EACCES, str(exc)) from None
        self.owned.add(root)

    def read(self, key: BlockKey) -> bytes:
        with open(self.path_of(key), "rb", buffering=0) as f:
            return f.read()

    def remove(self, key: BlockKey) -> None:
        self.files.forget(key)
        try:
            os.unlink(self.path_of(key))
        except FileNotFoundError:
            pass

    def scan(self) -> Iterator[tuple[BlockKey | None, str, int]]:
        """Every file in the tier's directories: (its block key, or None for anything that is
        not a block file, its path, its size)."""
        for root in self.spec.paths:
            try:
                files = os.listdir(root)
            except FileNotFoundError:
                continue
            for name in files:
                if name == TIER_MARK:
                    continue
                folder = os.path.join(root, name)
                if not name.isdigit() or not os.path.isdir(folder):
                    yield None, folder, 0
                    continue
                for entry in os.scandir(folder):
                    m = BLOCK_NAME.match(entry.name)
                    key = (int(name), int(m[1]), int(m[2])) if m else None
                    try:
                        size = entry.stat().st_size
                    except FileNotFoundError:
                        continue
                    yield key, entry.path, size


def _write_new(path: str, data: bytes | memoryview) -> os.stat_result | None:
    """``data`` as the new file ``path`` and its status; None if a file of that name was there
    (O_EXCL: no descriptor open on an earlier file sees it change). For a tier that syncs
    nothing (memory: a reboot empties it) this replaces write_atomically's temporary name,
    random tag and rename: a block's entry is committed only once its file is whole, so a file
    that a crash cut short has no entry, an orphan that reconcile removes like a temporary."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except FileExistsError:
        return None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return os.fstat(fd)
    except BaseException:
        try:
            os.unlink(path)  # a full tier: no partial block left under the final name
        except OSError:  # the first error is the one to report; reconcile removes it later
            pass
        raise
    finally:
        os.close(fd)


class Written(NamedTuple):
    """A block file written to a tier, its room counted, its BlockCached not yet committed."""

    key: BlockKey
    tier: TierStore
    length: int
    checksum: int
    fingerprint: str | None  # of the UFS file the bytes came from, if known
    status: os.stat_result  # of the file written

"""The real parts around a crash-simulated journal: cache tiers and a local UFS as real files,
the store's failures, and the persister run one upload at a time.

The journal lives on ``SimStorage`` (recovery/crashsim.py), which can be crashed into any state
a disk allows. The tier directories and the UFS are real directories the engine's own code
writes; SimStorage cannot hold them, so a crash pairs the journal cut at some operation with
those files *as they stood at that moment*: ``World.capture`` (SimStorage's ``before_op``)
copies them before every journal operation, and ``World.restore`` puts a copy back. A kill -9
leaves them as they were (everything written is there); a reboot also empties the MEM tier,
which lives in memory, and may lose the SSD tier's block files written since the journal's last
sync (``World.power_loss``).
"""

from __future__ import annotations

import os
import random
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from engine import openfiles
from engine.cache.tiers import TierSpec
from engine.config import Config
from engine.engine import Engine
from engine.persister import Persister
from journal.journal import JournalOptions
from recovery.crashdisk import Fsync
from recovery.crashsim import SimStorage
from ufs.base import UfsAttrs, UfsStatus, UnderFS
from ufs.errors import UfsUnavailable
from ufs.local import LocalUnderFS

AREAS = ("ufs", "mem", "ssd")  # the real directories of a world, below its top directory
# path below the top directory -> (content, permission bits: chmod reaches the store)
Files = dict[str, tuple[bytes, int]]


class StepPersister(Persister):
    """The production persister, with its uploads queued rather than started: ``step`` runs one
    (in the persister's own thread, as in production) and waits for it."""

    def __init__(self, engine: Engine) -> None:
        assert engine.cache is not None
        super().__init__(engine.ns, engine.mounts, engine.sync, engine.cache)
        # (file, version): no version for the persister's own re-queues (an upload that
        # waited for a close, a hold, or its called-off predecessor), as ``submit`` allows
        self.queue: list[tuple[int, int | None]] = []

    def submit(self, file: int, version: int | None = None) -> None:
        self.queue.append((file, version))

    def step(self, index: int) -> tuple[int, int | None]:
        file, version = self.queue.pop(index)
        super().submit(file, version)
        self.drain()
        return file, version


class _Midway:
    """A source that starts ``during`` once its first bytes were read (``at_end`` False), or
    once it has been read to its end (True: the connector has everything and is about to put
    the object in place): a change made by another caller while an upload is under way. The
    change runs in its own thread, as it would in production: it may wait for this very upload
    (the persister holds uploads around deletes, renames and rewrites), so the upload goes on
    after giving it a moment to begin."""

    def __init__(
        self,
        source: BinaryIO,
        during: Callable[[], None],
        started: list[threading.Thread],
        at_end: bool = False,
    ) -> None:
        self.source = source
        self.during: Callable[[], None] | None = during
        self.started = started
        self.at_end = at_end

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if self.during is not None and (data == b"" or not self.at_end):
            during, self.during = self.during, None
            thread = threading.Thread(target=during, name="change-midway", daemon=True)
            thread.start()
            self.started.append(thread)
            thread.join(timeout=0.05)
        return data


class FlakyUfs(LocalUnderFS):
    """A local directory whose writes the world can refuse (the store down for writes), and
    whose next upload can have a change made in its middle."""

    def __init__(self, root: str, world: World) -> None:
        super().__init__(root)
        self.world = world

    def _refuse(self, what: str, path: str) -> None:
        if self.world.ufs_down:
            raise UfsUnavailable(f"{self.uri}: {what} {path}: the store refuses writes")

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        self._refuse("write", path)
        during, self.world.during = self.world.during, None
        if during is not None:
            source = _Midway(  # type: ignore[assignment]
                source, during, self.world.midway, self.world.during_at_end
            )
        return super().write(path, source, attrs)

    def delete(self, path: str) -> None:
        self._refuse("delete", path)
        super().delete(path)

    def rename(self, src: str, dst: str) -> None:
        self._refuse("rename", src)
        super().rename(src, dst)

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        self._refuse("mkdir", path)
        super().mkdir(path, attrs)

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        self._refuse("set_attrs", path)
        return super().set_attrs(path, attrs)


class World:
    """A tier configuration, a UFS directory, and the files captured at each journal
    operation of the live storage."""

    def __init__(
        self, top: Path, options: JournalOptions, block_size: int, mem: int, ssd: int
    ) -> None:
        self.top = top
        for area in AREAS:
            (top / area).mkdir(parents=True, exist_ok=True)
        self.ufs = str(top / "ufs")
        self.options = options
        self.config = Config(
            journal=options,
            block_size=block_size,
            cache_readahead_blocks=0,  # no background fetches: every step ends settled
            cache_tiers=[
                TierSpec("MEM", [str(top / "mem")], mem, sync=False),
                TierSpec("SSD", [str(top / "ssd")], ssd, sync=True),
            ],
        )
        self.ufs_down = False
        self.during: Callable[[], None] | None = None
        self.during_at_end = False  # the change comes once the upload has read everything
        self.midway: list[threading.Thread] = []  # changes started during an upload
        self.fatal: list[BaseException] = []
        self.snapshots: dict[int, Files] = {}  # op index -> files just before that operation
        self.first: Files = {}  # the files the live storage started with

    # -- files --------------------------------------------------------------------------------

    def files(self) -> Files:
        out: Files = {}
        for area in AREAS:
            for root, _dirs, names in os.walk(self.top / area):
                for name in names:
                    path = os.path.join(root, name)
                    try:
                        with open(path, "rb") as f:
                            mode = os.fstat(f.fileno()).st_mode & 0o7777
                            out[os.path.relpath(path, self.top)] = (f.read(), mode)
                    except FileNotFoundError:
                        continue
        return out

    def capture(self, index: int) -> None:
        self.snapshots[index] = self.files()

    def files_at(self, storage: SimStorage, cut: int) -> Files:
        """The real files when the crash right after operation ``cut`` of ``storage`` came."""
        if cut >= storage.op_count:
            return self.files()
        return self.snapshots.get(cut, self.first)

    def power_loss(self, storage: SimStorage, cut: int, files: Files, rng: random.Random) -> Files:
        """``files`` after a power loss right after operation ``cut``: a disk tier's block file
        written since the journal's last fsync may be gone (each one at random), as the kernel
        may write back a log page before a block's (journal/datasync.py: the tiers are synced
        before the log, not before an entry is written). Files as they stood at that fsync
        stay: those of entries it made durable among them."""
        last = next((i for i in range(cut - 1, -1, -1) if isinstance(storage.log[i], Fsync)), 0)
        synced = self.snapshots.get(last, self.first)
        return {
            rel: kept
            for rel, kept in files.items()
            if not rel.startswith("ssd/") or synced.get(rel) == kept or rng.random() < 0.5
        }

    def restore(self, files: Files, reboot: bool) -> Files:
        """The real directories made to hold ``files`` exactly; a reboot empties MEM."""
        for area in AREAS:
            shutil.rmtree(self.top / area, ignore_errors=True)
            (self.top / area).mkdir()
        kept = {p: b for p, b in files.items() if not (reboot and p.startswith("mem/"))}
        for rel, (data, mode) in kept.items():
            path = self.top / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)
        return kept

    def watch(self, storage: SimStorage, files: Files) -> None:
        """Makes ``storage`` the live one, which started with ``files``."""
        self.snapshots = {}
        self.first = files
        storage.before_op = self.capture

    # -- the engine ---------------------------------------------------------------------------

    def opener(
        self, uri: str, options: Mapping[str, str], hidden: Mapping[str, str] | None
    ) -> UnderFS:
        return FlakyUfs(uri, self)

    def open(self, storage: SimStorage) -> Engine:
        """An engine as a daemon opens it (recovery, the block map reconciled with the tiers,
        pending uploads resumed), its uploads queued for ``StepPersister.step``."""
        engine = Engine(
            storage, self.options, config=self.config, on_fatal=self.fatal.append,
            reconcile=False,
        )  # fmt: skip
        assert engine.persister is not None and engine.cache is not None
        engine.persister.close()
        steps = StepPersister(engine)
        engine.persister = engine.fs.persister = steps
        engine.mounts.opener = self.opener
        engine.cache.reconcile(repair=True)
        openfiles.release_at_start(engine.ns, engine.cache)  # no handle survived
        steps.resume()
        return engine


def persister_of(engine: Engine) -> StepPersister:
    assert isinstance(engine.persister, StepPersister)
    return engine.persister


def tier_files(engine: Engine) -> set[tuple[str, object, int]]:
    assert engine.cache is not None
    return {
        (tier.name, key if key is not None else path, size)
        for tier in engine.cache.tiers
        for key, path, size in tier.scan()
    }


def block_map(engine: Engine) -> set[tuple[str, object, int]]:
    return {
        (info.tier, (file, version, idx), info.length)
        for file, blocks in engine.state.blocks.items()
        for (version, idx), info in blocks.items()
    }

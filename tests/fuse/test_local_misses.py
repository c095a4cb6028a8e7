"""Cold reads through a mount of a local UFS: answered from the UFS read, the blocks stored by
the daemon's storer behind the readers (engine/cache/storer.py); a kill -9 while it stores
leaves a home that opens clean and serves the same bytes."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted


def _dataset(root: Path, classes: int, per_class: int) -> dict[str, bytes]:
    files = {}
    for c in range(classes):
        for i in range(per_class):
            rel = f"train/c{c}/img{i:03d}.jpg"
            data = os.urandom(20_000 + 997 * i)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            files[rel] = data
    return files


def _read_all(mount: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    with ThreadPoolExecutor(8) as pool:  # concurrent readers, as a DataLoader's workers
        return dict(
            zip(files, pool.map(lambda rel: (mount / rel).read_bytes(), files), strict=True)
        )


def test_cold_local_misses_through_the_mount_are_answered_and_stored_by_unmount(
    local_mount: Mounted,
) -> None:
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    files = _dataset(ufs, 3, 40)
    assert _read_all(local_mount.path, files) == files
    # Unmounting stops the engine, whose storer stores what it still holds first.
    local_mount.umount()
    report = json.loads(shoal("report", "--json", home=local_mount.home).stdout)
    assert sum(t["blocks"] for t in report["tiers"]) == len(files)
    local_mount.mount()
    assert _read_all(local_mount.path, files) == files


def test_a_kill9_while_cold_blocks_are_stored_leaves_a_clean_home(local_mount: Mounted) -> None:
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    files = _dataset(ufs, 4, 60)
    assert _read_all(local_mount.path, files) == files
    local_mount.kill9()  # the storer's queue and batch are cut wherever they were
    local_mount.teardown()
    # The next start reconciles: an orphan block file is removed, nothing else is wrong.
    fsck = shoal("fsck", home=local_mount.home)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    local_mount.mount()
    assert _read_all(local_mount.path, files) == files


def test_cold_reads_through_the_mount_are_right_whether_the_kernel_holds_the_files_or_not(
    local_mount: Mounted,
) -> None:
    # Files in the page cache are read on the event loop (ufs/resident.py); evicted ones would
    # wait for the disk, so a worker thread reads them. Both answer the store's bytes, and both
    # kinds of block are stored.
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    files = _dataset(ufs, 2, 30)
    for n, rel in enumerate(files):
        if n % 2:
            fd = os.open(ufs / rel, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    assert _read_all(local_mount.path, files) == files
    local_mount.umount()
    report = json.loads(shoal("report", "--json", home=local_mount.home).stdout)
    assert sum(t["blocks"] for t in report["tiers"]) == len(files)
    local_mount.mount()
    assert _read_all(local_mount.path, files) == files

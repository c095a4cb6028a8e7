"""Reads served from the tiers after a remount (the kernel's page cache holds none of the
files, the blocks lie in the disk tier): every block checked at its first read (CRC-32 by
engine/cache/crc.py), a damaged one fetched again; and the kernel's long timeouts never hide a
change that a sync found."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore


def test_a_tier_pass_after_a_remount_serves_only_checked_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    (store.root / "cls").mkdir()
    content = {f"cls/img-{i}.jpg": os.urandom(3000 + 37_000 * i) for i in range(6)}
    for rel, data in content.items():
        (store.root / rel).write_bytes(data)
    with mounted(store, tmp_path, "ro") as m:
        for rel, data in content.items():  # cold: fetched, stored into the tiers
            assert (m.path / rel).read_bytes() == data
        m.umount()  # every block stored; the MEM tier emptied into the disk tier
        blocks = sorted((m.home / "cache").rglob("*.blk"))
        assert len(blocks) == len(content)
        for i, blk in enumerate(blocks):  # damaged while nothing ran: bits, a torn end
            raw = bytearray(blk.read_bytes())
            if i % 3 == 0:
                raw[len(raw) // 2] ^= 0x01
            elif i % 3 == 1:
                del raw[-1:]
            blk.write_bytes(bytes(raw))
        m.mount("ro")
        for _ in range(2):  # checked at the first read; then from the kernel's pages
            for rel, data in content.items():
                assert (m.path / rel).read_bytes() == data


def test_a_change_found_by_sync_is_seen_at_once_despite_long_timeouts(tmp_path: Path) -> None:
    """The kernel keeps names, attributes and pages for minutes on a read-only mount; a change
    of the store that a sync finds is seen by the next stat and read as soon as the sync
    command returns: a new size, new bytes (also where they had been pushed at open)."""
    store = LocalStore(tmp_path / "ufs")
    old = os.urandom(61_000)
    (store.root / "img.jpg").write_bytes(old)
    with mounted(store, tmp_path, "ro") as m:
        f = m.path / "img.jpg"
        assert f.read_bytes() == old
        m.umount()
        m.mount("ro")
        for _ in range(3):
            assert os.stat(f).st_size == len(old)
            assert f.read_bytes() == old
            new = os.urandom(len(old) + 5000 + _)
            (store.root / "img.jpg").write_bytes(new)
            shoal("fs", "sync", "/", home=m.home)
            assert os.stat(f).st_size == len(new)
            assert f.read_bytes() == new
            old = new

"""No RAM left behind (issue 17, defect 6): `shoal umount` empties the MEM tier on /dev/shm into
the disk tier (journaled), `shoal cache clear` removes a home's tiers, and every file still
reads back right afterwards, from the cache or from its store again."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine.config import default_tiers
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted, mounted
from tests.homes import write_config
from tests.ufs.stores import LocalStore, Store


def _mem_dir(home: Path) -> Path:
    mem = default_tiers(str(home))[0]
    assert mem.name == "MEM", "this test needs /dev/shm"
    return Path(mem.paths[0])


SIZES = [(1 << 20) + 1000 * i for i in range(4)]


def _fill(store: Store) -> dict[str, str]:
    digests = {}
    for i, size in enumerate(SIZES):
        data = os.urandom(size)
        store.put(f"part{i}.bin", data)
        digests[f"part{i}.bin"] = hashlib.sha256(data).hexdigest()
    return digests


def _read_all(m: Mounted, digests: dict[str, str]) -> None:
    for name, digest in digests.items():
        assert hashlib.sha256((m.path / name).read_bytes()).hexdigest() == digest, name


def _report(home: Path) -> dict[str, dict[str, int]]:
    raw = json.loads(shoal("report", "--json", home=home).stdout)
    return {t["name"]: t for t in raw["tiers"]}


def test_umount_moves_mem_to_disk_and_cache_clear_removes_the_tiers(
    store: Store, tmp_path: Path
) -> None:
    digests = _fill(store)
    with mounted(store, tmp_path) as m:
        mem = _mem_dir(m.home)
        _read_all(m, digests)
        assert any(mem.rglob("*.blk")), "the reads were cached in MEM"
        busy = shoal("cache", "clear", home=m.home, expect=4)
        assert f"mounted at {m.path}" in busy.stderr
        m.umount()
        assert not mem.exists(), list(mem.rglob("*"))  # no RAM held after umount

        tiers = _report(m.home)  # the journal says where the blocks went
        assert tiers["MEM"]["blocks"] == 0 and tiers["SSD"]["blocks"] == 4
        assert not mem.exists()  # an offline command leaves none either
        shoal("fsck", home=m.home)

        m.mount()  # served from the SSD tier: nothing read from the store
        _read_all(m, digests)
        raw = json.loads(shoal("report", "--json", home=m.home).stdout)
        assert raw["ufs_bytes_read"] == 0
        m.umount()

        cleared = shoal("cache", "clear", home=m.home)
        assert cleared.stdout.startswith(f"{4} block(s) dropped, 0 kept")
        assert not (m.home / "cache").exists() and not mem.exists()
        assert sum(t["blocks"] for t in _report(m.home).values()) == 0
        shoal("fsck", home=m.home)

        m.mount()  # from the store again
        _read_all(m, digests)
        raw = json.loads(shoal("report", "--json", home=m.home).stdout)
        assert raw["ufs_bytes_read"] == sum(SIZES)
        m.umount()
        assert not mem.exists()


def test_keep_volatile_tiers_keeps_mem_until_cache_clear(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    digests = _fill(store)
    home = tmp_path / "home"
    home.mkdir()
    write_config(home, "[cache]", "keep_volatile_tiers = true")
    with mounted(store, tmp_path) as m:
        mem = _mem_dir(m.home)
        _read_all(m, digests)
        m.umount()
        assert len(list(mem.rglob("*.blk"))) == 4  # kept, as configured
        assert _report(m.home)["MEM"]["blocks"] == 4
        shoal("cache", "clear", home=m.home)
        assert not mem.exists()
        m.mount()
        _read_all(m, digests)

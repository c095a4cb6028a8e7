"""`shoal report`'s figures: which tier served the hits, so an epoch over a dataset larger than
the highest tier shows the lower tier serving it (docs/dataloader.md)."""

from __future__ import annotations

from pathlib import Path

from engine.cache.report import cache_report
from tests.homes import write_config
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore


def hits_by_tier(report: dict[str, object]) -> dict[str, int]:
    return {t["name"]: t["hits"] for t in report["tiers"]}  # type: ignore[attr-defined]


def test_the_report_counts_hits_per_tier(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    for name in "ab":
        store.put(name, name.encode() * 16)  # one 16-byte block each
    tiers = [("MEM", tmp_path / "mem", 16), ("SSD", tmp_path / "ssd", 64)]
    write_config(home, block_size=16, tiers=tiers)
    engine = open_engine()  # fsck-checked and closed after the test
    cache = engine.cache
    assert cache is not None
    engine.mounts.mount("/", store.uri)
    for name in "ab":  # b takes the one MEM slot: a is demoted to SSD
        engine.sync.lookup(f"/{name}")
        assert engine.fs.read(f"/{name}", 0, 16) == name.encode() * 16
        cache.drain()
    placed = {n: next(iter(engine.state.blocks[engine.sync.lookup(f"/{n}").id].values())).tier
              for n in "ab"}  # fmt: skip
    assert placed == {"a": "SSD", "b": "MEM"}
    before = hits_by_tier(cache_report(cache))
    for _ in range(3):
        assert engine.fs.read("/a", 0, 16) == b"a" * 16
    assert engine.fs.read("/b", 0, 16) == b"b" * 16
    after = hits_by_tier(cache_report(cache))
    assert after["SSD"] - before["SSD"] == 3
    assert after["MEM"] - before["MEM"] == 1

"""`shoal fs load|pin|unpin|free` and `shoal report` on a home with a local UFS mounted."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shoal_cli import shoal


def setup(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    ufs, home = tmp_path / "ufs", tmp_path / "home"
    data = {f"train/c{c}/img{i}.jpg": os.urandom(40_000 + i) for c in range(2) for i in range(5)}
    for key, value in data.items():
        (ufs / key).parent.mkdir(parents=True, exist_ok=True)
        (ufs / key).write_bytes(value)
    home.mkdir()
    (home / "shoal.toml").write_text(
        "block_size = 16384\n"
        f'[[cache.tiers]]\nname = "MEM"\npaths = ["{tmp_path / "mem"}"]\nquota = "128KiB"\n'
        f'[[cache.tiers]]\nname = "SSD"\npaths = ["{tmp_path / "ssd"}"]\nquota = "4MiB"\n'
    )
    shoal("fs", "mount", "/", str(ufs), home=home)
    return ufs, home, data


def report(home: Path) -> dict[str, object]:
    return json.loads(shoal("report", "--json", home=home).stdout)


def test_load_report_pin_free(tmp_path: Path) -> None:
    ufs, home, data = setup(tmp_path)
    total = sum(len(v) for v in data.values())
    out = shoal("fs", "load", "-R", "--parallel", "4", "/train", home=home).stdout
    assert f"10 file(s) loaded ({total:,} bytes), 0 already cached, 0 failed" in out
    r = report(home)
    tiers = {t["name"]: t for t in r["tiers"]}  # type: ignore[attr-defined]
    assert tiers["MEM"]["used_bytes"] + tiers["SSD"]["used_bytes"] == total
    assert tiers["MEM"]["used_bytes"] <= 128 * 1024
    assert {
        "cache_hits",
        "cache_misses",
        "ufs_bytes_read",
        "pending_persists",
        "journal_seq",
    } <= set(r)
    out = shoal("fs", "load", "-R", "/train", home=home).stdout
    assert "0 file(s) loaded (0 bytes), 10 already cached" in out
    # --verify reads every block's CRC: a damaged block file is found, dropped, and reported.
    victim = next((tmp_path / "ssd").rglob("*.blk"))
    victim.write_bytes(b"\0" * victim.stat().st_size)
    proc = shoal("fs", "load", "-R", "--verify", "/train", home=home, expect=1)
    assert "1 damaged block(s) dropped" in proc.stdout
    shoal("fs", "load", "-R", "--verify", "/train", home=home)  # fetched again: clean
    # pin to a medium, unpin, free
    shoal("fs", "pin", "/train/c0/img0.jpg", "SSD", home=home)
    err = shoal("fs", "pin", "/train/c0/img1.jpg", "TAPE", home=home, expect=1).stderr
    assert "no tier named TAPE" in err
    shoal("fs", "unpin", "/train/c0/img0.jpg", home=home)
    out = shoal("fs", "free", "-R", "/train", home=home).stdout
    assert out.startswith(f"{sum(-(-len(v) // 16384) for v in data.values())} block(s) dropped")
    assert all(t["used_bytes"] == 0 for t in report(home)["tiers"])  # type: ignore[attr-defined]
    text = shoal("report", home=home).stdout
    assert text.startswith("MEM") and "journal seq" in text

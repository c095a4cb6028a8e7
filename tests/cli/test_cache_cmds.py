"""`shoal fs load|pin|unpin|free` and `shoal report` on a home with a local UFS mounted."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.cli.shoal_cli import shoal


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
    assert "tier     MEM" in text and "journal  seq" in text


def test_ttl_free_and_delete(tmp_path: Path) -> None:
    ufs, home, data = setup(tmp_path)
    shoal("fs", "load", "-R", "/train", home=home)
    err = shoal("fs", "setttl", "/train/c0", "soon", home=home, expect=1).stderr
    assert "not a duration" in err
    shoal("fs", "setttl", "/train/c0", "250ms", home=home)  # free: the default action
    shoal("fs", "setttl", "/train/c1", "250ms", "--action", "delete", home=home)
    shoal("fs", "setttl", "/train/c1/img0.jpg", "1h", home=home)  # not due; inside c1 anyway
    time.sleep(0.3)
    out = shoal("fs", "checkttl", home=home).stdout
    assert out.startswith("2 expired path(s)")
    stats = report(home)
    c0_blocks = sum(-(-len(v) // 16384) for k, v in data.items() if k.startswith("train/c0"))
    assert c0_blocks > 0
    ls = shoal("fs", "ls", "/train", home=home).stdout
    assert "c0" in ls and "c1" not in ls  # freed stays; deleted goes...
    assert not (ufs / "train" / "c1").exists()  # ...from the UFS too
    assert all((ufs / k).read_bytes() == v for k, v in data.items() if k.startswith("train/c0"))
    assert all(t["used_bytes"] == 0 for t in stats["tiers"])  # type: ignore[attr-defined]
    assert shoal("fs", "checkttl", home=home).stdout.startswith("0 expired")  # TTL cleared


def test_persist_uploads_cache_only_files(tmp_path: Path) -> None:
    ufs, home, _data = setup(tmp_path)
    local = tmp_path / "model.ckpt"
    local.write_bytes(os.urandom(100_000))
    shoal("fs", "mkdir", "/ckpt", home=home)
    shoal("fs", "put", "--write-type", "MUST_CACHE", str(local), "/ckpt/model.ckpt", home=home)
    assert not (ufs / "ckpt" / "model.ckpt").exists()  # cache only
    out = shoal("fs", "persist", "-R", "/ckpt", home=home).stdout
    assert out.startswith("1 file(s) persisted, 0 failed")
    assert (ufs / "ckpt" / "model.ckpt").read_bytes() == local.read_bytes()
    assert shoal("fs", "persist", "-R", "/ckpt", home=home).stdout.startswith("0 file(s)")

"""`shoal bench read` runs end to end on a tiny dataset (figures are for docs/benchmarks.md,
never asserted: the machine is noisy)."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from cli.bench.ceiling import bare_mount, store_dir
from engine.config import default_tiers
from fuse.mountinfo import alive
from tests.cli.shoal_cli import shoal


def test_bench_read_small_run(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    proc = shoal(
        "bench", "read", str(tmp_path), "--json", "--chart", str(chart), "--classes", "2",
        "--per-class", "10", "--shards", "1", "--shard-mib", "4", "--latency-ms", "1",
    )  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["dataset"]["small_files"] == 20
    for key in ("local", "boto3", "mount_cold", "mount_warm"):
        for size in ("small", "large"):
            assert result[f"{key}_{size}"]["mib_per_s"] > 0
    assert result["mount_prefetch_small"]["files_per_s"] > 0
    assert result["boto3_wide_small"]["files_per_s"] > 0  # prefetch's ceiling, same run
    for key in ("ceiling_cold_s3_small", "ceiling_cold_s3_listed_small"):  # bare pyfuse3 on S3
        assert result[key]["files_per_s"] > 0 and result[key]["mib_per_s"] > 0
        assert result[key]["daemon_cpu_us_per_file"] >= 0
    assert set(result["ratios"]) >= {
        "cold_small_vs_boto3", "cold_large_vs_boto3", "warm_small_vs_local", "warm_large_vs_local",
        "prefetch_small_vs_boto3", "fsspec_small_vs_local", "fsspec_small_vs_local_beside",
        "tier_small_vs_ceiling", "warm_small_vs_ceiling", "local_cold_small_vs_ceiling",
        "boto3_wide_vs_boto3", "prefetch_small_vs_boto3_wide",
        "cold_s3_ceiling_vs_boto3", "cold_small_vs_s3_ceiling", "cold_s3_listed_ceiling_vs_boto3",
        "file_ceiling_vs_ceiling", "tier_small_vs_file_ceiling",
        "store_ceiling_vs_ceiling", "local_cold_small_vs_store_ceiling",
        "checked_ceiling_vs_ceiling", "tier_small_vs_checked_ceiling",
    }  # fmt: skip
    for key in ("file_ceiling_vs_ceiling", "tier_small_vs_file_ceiling",
                "store_ceiling_vs_ceiling", "local_cold_small_vs_store_ceiling",
                "checked_ceiling_vs_ceiling", "tier_small_vs_checked_ceiling"):  # fmt: skip
        assert result["ratios"][key] > 0
    for key in ("fsspec_first_small", "fsspec_warm_small", "local_small_beside"):
        assert result[key]["files_per_s"] > 0
    for key in ("ceiling_first", "ceiling_warm", "ceiling_file_first", "ceiling_store_first",
                "ceiling_checked_first", "mount_tier", "mount_tier_warm"):  # fmt: skip
        assert result[f"{key}_small"]["files_per_s"] > 0
        assert result[f"{key}_small"]["daemon_cpu_us_per_file"] >= 0
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert list(tmp_path.glob("shoal-bench-read-*")) == []  # its scratch is removed
    assert not os.path.exists(store_dir(result["scratch"]))  # the fill ceiling's copies (RAM)
    # And its homes' MEM tiers, on /dev/shm (by name: other sessions make theirs meanwhile).
    for home in ("home", "tier-home", "home-prefetch"):
        for tier in default_tiers(os.path.join(result["scratch"], home)):
            assert not any(os.path.exists(p) for p in tier.paths), tier


def test_file_ceiling_serves_its_files_byte_for_byte(tmp_path: Path) -> None:
    """The file-backed ceiling (a descriptor kept per file, one pread per READ) serves each
    file's own bytes, at every offset, not a neighbour's."""
    src = tmp_path / "src"
    files = []
    for i in range(12):
        rel = f"c{i % 3}/f{i}.bin"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(1000 + i * 9_001)  # sizes differ: one file's bytes cannot pass
        (src / rel).write_bytes(data)
        files.append((rel, len(data)))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with bare_mount(str(scratch), files, source=str(src), kept=True) as (mnt, _pid):
        for rel, _size in files:
            assert (Path(mnt) / rel).read_bytes() == (src / rel).read_bytes()
        rel, size = files[-1]
        with open(os.path.join(mnt, rel), "rb") as f:
            f.seek(size // 2)
            assert f.read(4096) == (src / rel).read_bytes()[size // 2 : size // 2 + 4096]
    assert not (scratch / "ceiling-mnt").exists()  # unmounted and removed


def test_checked_ceiling_serves_its_files_and_refuses_one_changed_since_its_start(
    tmp_path: Path,
) -> None:
    """The checked ceiling really checks: each file's own bytes, at every offset, while they
    match the CRC-32 taken at its start; a file whose bytes changed since (same size) fails
    its check and is answered EIO, as a damaged block of Shoal's disk tier is never served."""
    src = tmp_path / "src"
    files = []
    for i in range(6):
        rel = f"c{i % 2}/f{i}.bin"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(os.urandom(3000 + i * 20_011))
        files.append((rel, 3000 + i * 20_011))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    damaged, _ = files[2]
    with bare_mount(str(scratch), files, source=str(src), checked=True) as (mnt, _pid):
        for rel, size in files[3:]:
            with open(os.path.join(mnt, rel), "rb") as f:
                f.seek(size // 3)  # the first read of the file is not at its start
                assert f.read(5000) == (src / rel).read_bytes()[size // 3 : size // 3 + 5000]
            assert (Path(mnt) / rel).read_bytes() == (src / rel).read_bytes()
        (src / damaged).write_bytes(os.urandom(files[2][1]))
        with pytest.raises(OSError) as refused:
            (Path(mnt) / damaged).read_bytes()
        assert refused.value.errno == errno.EIO
    assert not (scratch / "ceiling-mnt").exists()


def test_store_ceiling_serves_each_file_and_stores_a_copy_of_it(tmp_path: Path) -> None:
    """The cache-fill ceiling serves each file's own bytes and stores what it served, each
    file in a file of its own (a ceiling that skipped the storing would be no ceiling)."""
    src, store, scratch = tmp_path / "src", tmp_path / "store", tmp_path / "scratch"
    files = []
    for i in range(6):
        rel = f"c{i % 2}/f{i}.bin"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(os.urandom(5000 + i * 7_001))
        files.append((rel, (src / rel).stat().st_size))
    store.mkdir()
    scratch.mkdir()
    with bare_mount(str(scratch), files, source=str(src), store=str(store)) as (mnt, _pid):
        served = {rel: (Path(mnt) / rel).read_bytes() for rel, _size in files}
        deadline = time.monotonic() + 20  # its thread stores them after they were served
        while _copies(store) != sorted(served.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert served == {rel: (src / rel).read_bytes() for rel, _size in files}
    assert _copies(store) == sorted(served.values())


def _copies(store: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in store.iterdir())


def test_store_ceiling_that_cannot_store_stops_serving(tmp_path: Path) -> None:
    """Serving on without storing would report the pread ceiling under the fill ceiling's
    name: the file system's process ends at its first failed store."""
    src, scratch = tmp_path / "src", tmp_path / "scratch"
    src.mkdir()
    scratch.mkdir()
    (src / "f.bin").write_bytes(os.urandom(5000))
    missing = str(tmp_path / "no-such-dir")
    with bare_mount(str(scratch), [("f.bin", 5000)], source=str(src), store=missing) as (mnt, pid):
        try:  # its store fails in the thread, before or after the reply leaves
            (Path(mnt) / "f.bin").read_bytes()
        except OSError:  # ECONNABORTED: it ended before replying
            pass
        deadline = time.monotonic() + 20
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    assert not (scratch / "ceiling-mnt").exists()

"""`shoal bench read` runs end to end on a tiny dataset (figures are for docs/benchmarks.md,
never asserted: the machine is noisy)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.config import default_tiers
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
    }  # fmt: skip
    for key in ("fsspec_first_small", "fsspec_warm_small", "local_small_beside"):
        assert result[key]["files_per_s"] > 0
    for key in ("ceiling_first", "ceiling_warm", "mount_tier", "mount_tier_warm"):
        assert result[f"{key}_small"]["files_per_s"] > 0
        assert result[f"{key}_small"]["daemon_cpu_us_per_file"] >= 0
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert list(tmp_path.glob("shoal-bench-read-*")) == []  # its scratch is removed
    # And its homes' MEM tiers, on /dev/shm (by name: other sessions make theirs meanwhile).
    for home in ("home", "tier-home", "home-prefetch"):
        for tier in default_tiers(os.path.join(result["scratch"], home)):
            assert not any(os.path.exists(p) for p in tier.paths), tier

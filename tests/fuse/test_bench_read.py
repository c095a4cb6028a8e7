"""`shoal bench read` runs end to end on a tiny dataset (figures are for docs/benchmarks.md,
never asserted: the machine is noisy)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

from tests.cli.shoal_cli import shoal


def test_bench_read_small_run(tmp_path: Path) -> None:
    shm_before = set(glob.glob("/dev/shm/shoal-*"))
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
    for key in ("ceiling_first_small", "mount_local_cold_small"):  # cli/bench/readlocal.py
        assert result[key]["files_per_s"] > 0
    assert set(result["ratios"]) == {
        "cold_small_vs_boto3", "cold_large_vs_boto3", "warm_small_vs_local", "warm_large_vs_local",
        "local_cold_small_vs_ceiling",
    }  # fmt: skip
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert list(tmp_path.glob("shoal-bench-read-*")) == []  # its scratch is removed
    assert set(glob.glob("/dev/shm/shoal-*")) <= shm_before  # and its MEM tier

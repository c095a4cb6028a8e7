"""`shoal bench write`, run tiny: its figures are present and the work it timed really arrived
in the stores (not how fast: benchmarks print figures, tests do not time)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.shoal_cli import shoal

FIGURES = {
    "tar_local": "files_per_s",
    "tar_async_through": "files_per_s",
    "tar_cache_through": "files_per_s",
    "tar_through": "files_per_s",
    "seq_local": "mb_per_s",
    "seq_through": "mb_per_s",
    "s3_mount": "mb_per_s",
    "s3_boto3": "mb_per_s",
}
RATIOS = (
    "tar_small_vs_local",
    "tar_small_through_vs_local",
    "seq_write_vs_local",
    "s3_write_vs_boto3",
)


def test_bench_write_json_figures_and_files_in_the_stores(tmp_path: Path) -> None:
    files, mib = 60, 3
    proc = shoal("bench", "write", str(tmp_path), "--json", "--files", str(files), "--size", "3")
    result = json.loads(proc.stdout)
    for key, unit in FIGURES.items():
        assert result[key]["seconds"] > 0 and result[key][unit] > 0, key
    for key in RATIOS:
        assert result[key] > 0, key
    # Every extracted file is in the UFS once the mount is gone; the writes that promise it
    # (the two THROUGH types) had it there before close returned.
    for mode in ("async_through", "cache_through", "through"):
        assert result[f"tar_{mode}"]["in_ufs"] == files, mode
        assert result[f"tar_{mode}"]["vs_local"] > 0, mode
    assert result["seq_through"]["in_ufs_bytes"] == mib << 20
    assert result["s3_mount"]["in_store_bytes"] == mib << 20
    assert list(tmp_path.iterdir()) == []  # its scratch directory went with it


def test_bench_write_refuses_zero_files(tmp_path: Path) -> None:
    proc = shoal("bench", "write", str(tmp_path), "--files", "0", expect=2)
    assert "--files: needs at least 1" in proc.stderr

"""scripts/dataloader_bench.py (docs/dataloader.md) works without torch: its help, its dataset
builder, and one tiny pass of every mount case with its torch-free reader (figures are never
asserted: the machine is noisy). The DataLoader itself is not run here: torch is an optional
extra, not a test dependency."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "dataloader_bench.py"
# Runs the script with torch, torchvision and fsspec made unimportable, whether installed or not.
WITHOUT_TORCH = (
    "import runpy, sys\n"
    "for name in ('torch', 'torchvision', 'fsspec'):\n"
    "    sys.modules[name] = None\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(SCRIPT), *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip


def test_dataloader_bench_help_needs_no_torch() -> None:
    proc = run_script("--help")
    assert proc.returncode == 0, proc.stderr
    assert "--smoke" in proc.stdout and "--mem-quota" in proc.stdout


def test_dataloader_bench_smoke_pass_over_every_mount_case(tmp_path: Path) -> None:
    shm_before = set(glob.glob("/dev/shm/shoal-dataloader-*"))
    data = tmp_path / "data"
    proc = run_script(
        "--smoke", "--json", "--classes", "2", "--per-class", "3", "--big-classes", "3",
        "--mem-quota", "200KiB", "--latency-ms", "1", "--data-dir", str(data),
        "--workdir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dataset"]["images"] == 6
    # ImageNet-like JPEGs: about 100 KB each.
    assert 70_000 < out["dataset"]["bytes"] / 6 < 140_000
    for key in ("local", "mount_cold", "mount_warm", "mount_remount", "s3_cold", "s3_warm"):
        assert out[key]["images"] == 6, key
    assert out["big_tiers"]["images"] == out["big_dataset"]["images"] == 9
    # After the remount every image came from the tiers, most of them from SSD: MEM holds two.
    report = out["big_tiers_report"]
    assert report["ufs_bytes_read"] == 0 and report["cache_misses"] == 0
    hits = {t["name"]: t["hits"] for t in report["tiers"]}
    assert hits["SSD"] > hits["MEM"]
    assert out["big_tiers"]["daemon_disk_read_bytes"] >= 0
    assert "fsspec_skipped" in out
    assert set(out["ratios"]) >= {"mount_cold", "mount_warm", "mount_remount", "big_tiers"}
    # The datasets stay where asked (made once, reused); everything else the script made is gone.
    assert sorted(os.listdir(data)) == ["imagefolder-2x3", "imagefolder-3x3"]
    assert sorted(os.listdir(tmp_path)) == ["data"]
    assert set(glob.glob("/dev/shm/shoal-dataloader-*")) <= shm_before

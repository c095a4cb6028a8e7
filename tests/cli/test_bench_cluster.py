"""`shoal bench cluster`, run tiny: every configuration's figures are there, the store's GETs
were counted (a cold epoch asks the store for every object at least once; the single node's
warm epoch asks nothing), the workers held bytes, and the ratios are against the single node
(not how fast: benchmarks print figures, tests do not time)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.shoal_cli import shoal


def test_bench_cluster_json_has_each_configuration_gets_and_worker_bytes(tmp_path: Path) -> None:
    done = shoal("bench", "cluster", "--classes", "2", "--per-class", "6", "--shards", "1",
                 "--shard-mib", "1", "--readers", "1", "--latency-ms", "1", "--json",
                 str(tmp_path))  # fmt: skip
    result = json.loads(done.stdout)
    files = result["dataset"]["files"]
    assert files == 13 and result["worker_quota"] < result["dataset"]["bytes"]
    single = result["single"]
    assert single["cold"]["ufs_gets"] >= files and single["warm"]["ufs_gets"] == 0
    for count in (1, 2, 3):
        mine = result[f"cluster_{count}"]
        assert mine["workers"] == count and mine["clients"] == 2
        assert mine["cold"]["ufs_gets"] >= files
        assert mine["cold"]["fallbacks"] >= 0 and mine["warm"]["fallbacks"] >= 0
        for phase in ("cold", "warm"):
            assert mine[phase]["files_per_s"] > 0 and mine[phase]["mib_per_s"] > 0
        held = mine["bytes_per_worker"]
        assert sorted(held) == [f"w{i + 1}" for i in range(count)]
        assert all(0 < n <= result["worker_quota"] for n in held.values()), held
        ratio = result["ratios"][f"cluster_{count}_cold_files_per_s_vs_single"]
        assert ratio == mine["cold"]["files_per_s"] / single["cold"]["files_per_s"]
    assert list(tmp_path.iterdir()) == []  # its scratch directory removed


def test_bench_cluster_combined_compares_both_layouts_in_one_run(tmp_path: Path) -> None:
    done = shoal("bench", "cluster", "--combined", "--classes", "2", "--per-class", "6",
                 "--shards", "1", "--shard-mib", "1", "--readers", "1", "--latency-ms", "1",
                 "--json", str(tmp_path))  # fmt: skip
    result = json.loads(done.stdout)
    files = result["dataset"]["files"]
    assert files == 13
    for layout, processes in (("separate", 6), ("combined", 3)):
        mine = result[layout]
        assert mine["processes"] == processes
        assert files <= mine["cold"]["ufs_gets"]
        for phase in ("cold", "warm"):
            assert mine[phase]["files_per_s"] > 0
    ratio = result["ratios"]["combined_cold_files_per_s_vs_separate"]
    assert (
        ratio
        == result["combined"]["cold"]["files_per_s"] / (result["separate"]["cold"]["files_per_s"])
    )
    assert list(tmp_path.iterdir()) == []  # its scratch directory removed

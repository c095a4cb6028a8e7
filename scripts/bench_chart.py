"""Draws `shoal bench read --json` outputs as one SVG (docs/bench-read.svg, docs/benchmarks.md):
left, each goal's ratio per run against its goal; right, small files/s per system and run, on
a log scale (the systems span three orders of magnitude).

    python scripts/bench_chart.py -o docs/bench-read.svg docs/bench-read/*.json

Each JSON file is one run; its bars are labelled with its "label" key if it has one (the
rebuilt runs in docs/bench-read/ do), else with the file's name. A figure a run lacks (an
older version of the benchmark) is left out of that run's bars. Needs matplotlib
(`pip install .[charts]`); neither Shoal nor its tests import it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

# (ratio, goal, what it compares), in the order of issue 16's goals.
RATIOS = [
    ("tier_small_vs_ceiling", 0.8, "Shoal from its tiers / bare pyfuse3, first pass"),
    ("warm_small_vs_ceiling", 0.8, "Shoal warm after S3 cold / bare pyfuse3 warm"),
    ("tier_warm_small_vs_ceiling", 0.8, "Shoal warm after tiers / bare pyfuse3 warm"),
    ("local_cold_small_vs_ceiling", 0.5, "Shoal, local UFS cold / bare pyfuse3, first"),
    ("cold_small_vs_boto3", 1.0, "Shoal, S3 cold / boto3 GETs"),
    ("prefetch_small_vs_boto3", 3.0, "Shoal, S3 dir. prefetch / boto3 GETs"),
    ("fsspec_small_vs_local", 0.5, "fsspec client warm / local page cache"),
    ("fsspec_small_vs_local_beside", 0.5, "fsspec warm / local, side by side"),
]
# (figure, label): the ceiling first, then Shoal's hit and miss paths, local, S3, fsspec.
SYSTEMS = [
    ("ceiling_first_small", "bare pyfuse3, first pass"),
    ("ceiling_warm_small", "bare pyfuse3, warm"),
    ("ceiling_checked_first_small", "bare pyfuse3 + CRC (checked ceiling)"),
    ("mount_tier_small", "Shoal, from its tiers"),
    ("mount_tier_warm_small", "Shoal, warm after tiers"),
    ("mount_warm_small", "Shoal, warm after S3 cold"),
    ("ceiling_store_first_small", "bare pyfuse3 + storing (fill ceiling)"),
    ("mount_local_cold_small", "Shoal, local UFS cold"),
    ("local_small", "local directory (page cache)"),
    ("boto3_small", "boto3 GETs, S3 at 20 ms"),
    ("mount_cold_small", "Shoal, S3 cold"),
    ("mount_prefetch_small", "Shoal, S3 dir. prefetch"),
    ("fsspec_warm_small", "fsspec client, warm"),
]


def load(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    runs = []
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        if not any(key in result for key, _ in SYSTEMS):
            sys.exit(f"{path}: not the output of `shoal bench read --json` (no figure to draw)")
        label = result.get("label") or os.path.splitext(os.path.basename(path))[0]
        runs.append((str(label), result))
    return runs


def _grouped_bars(axis: Any, rows: int, runs: list[tuple[str, list[float]]], log: bool) -> None:
    """One group of bars per row, one bar per run; a missing value (nan) draws nothing."""
    height = 0.8 / len(runs)
    for n, (label, values) in enumerate(runs):
        at = [i - 0.4 + (n + 0.5) * height for i in range(rows)]
        bars = axis.barh(at, values, height=height, label=label)
        texts = ["" if math.isnan(v) else (f"{v:,.0f}" if log else f"{v:.2f}") for v in values]
        axis.bar_label(bars, labels=texts, padding=2, fontsize=6)
    axis.set_yticks(range(rows))
    axis.invert_yaxis()


def draw(runs: list[tuple[str, dict[str, Any]]], out: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "shoal"  # the same runs give the same file
    import matplotlib.pyplot as plt

    nan = float("nan")
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.6))
    ratios = [
        (label, [float(r.get("ratios", {}).get(key, nan)) for key, _, _ in RATIOS])
        for label, r in runs
    ]
    _grouped_bars(left, len(RATIOS), ratios, log=False)
    for i, (_, goal, _) in enumerate(RATIOS):  # the goal: a black mark across its row
        left.plot([goal, goal], [i - 0.45, i + 0.45], color="black", linewidth=2)
        left.annotate(f"goal {goal:g}×", (goal, i + 0.45), fontsize=6, ha="left", va="top",
                      xytext=(3, 0), textcoords="offset points", style="italic")  # fmt: skip
    left.set_yticklabels([f"{key}\n{what}" for key, _, what in RATIOS], fontsize=7)
    top = max([3.2] + [v for _, vs in ratios for v in vs if not math.isnan(v)])
    left.set_xlim(0, top * 1.15)
    left.set_xlabel("ratio (×), measured in the same run; black: the goal")
    files = [
        (label, [float(r.get(key, {}).get("files_per_s", nan)) for key, _ in SYSTEMS])
        for label, r in runs
    ]
    _grouped_bars(right, len(SYSTEMS), files, log=True)
    right.set_xscale("log")
    right.set_yticklabels([label for _, label in SYSTEMS], fontsize=7)
    highest = max([10.0] + [v for _, vs in files for v in vs if not math.isnan(v)])
    right.set_xlim(10, highest * 6)
    right.set_xlabel("small files / s (110 KB each, 4 reader processes; log scale)")
    handles, labels = right.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper right", ncol=len(runs))
    fig.suptitle(title, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN.json", help="`shoal bench read --json`")
    parser.add_argument("-o", "--output", default="docs/bench-read.svg", help="the SVG to write")
    parser.add_argument(
        "--title", default="shoal bench read: ratios against their goals, and files/s per system"
    )
    args = parser.parse_args()
    draw(load(args.runs), args.output, args.title)
    print(f"wrote {args.output} from {len(args.runs)} run(s)")


if __name__ == "__main__":
    main()

"""The short-circuit benchmark (cli/bench/shortcircuit.py), run tiny: both clients' epochs
measured, and the one with short-circuit on read the worker's tier files while the other read
over HTTP only (their `shoal report`s say so), so the ratio it prints compares what it says."""

from __future__ import annotations

from cli.bench.shortcircuit import run


def test_bench_shortcircuit_measures_one_client_short_and_one_over_http() -> None:
    result = run(files=20, size=5000, readers=2)
    assert [len(result["files_per_s"][k]) for k in ("on", "off")] == [2, 2]
    assert all(rate > 0 for rates in result["files_per_s"].values() for rate in rates)
    shorts = result["short_circuit_reads"]
    assert shorts["off"] == 0 and shorts["on"] >= 20, shorts

"""A failing test's report carries the tail of its mount daemons' logs (tests/conftest.py): a
flake's only trace of what a daemon answered, whose temporary directory later runs remove."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER = """
from tests.fuse.mounting import Mounted

def test_inner(tmp_path):
    m = Mounted(tmp_path / "home", "file:///ufs", tmp_path / "mnt")  # as a mount makes it
    (m.home / "logs").mkdir(parents=True)
    lines = [f"line {i}" for i in range(200)] + ["WARNING fuse.boundary: flush answered EINVAL"]
    (m.home / "logs" / "shoal.log").write_text("\\n".join(lines) + "\\n")
    assert False, "the mount's program saw EINVAL"

def test_inner_passing(tmp_path):
    m = Mounted(tmp_path / "home", "file:///ufs", tmp_path / "mnt")
    (m.home / "logs").mkdir(parents=True)
    (m.home / "logs" / "shoal.log").write_text("nothing to see\\n")
"""


def test_a_failing_tests_report_shows_the_tail_of_its_daemons_log(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("from tests.conftest import *  # noqa: F403 (its hooks, its fixtures)")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "shoal.log of the daemon of" in out
    assert "WARNING fuse.boundary: flush answered EINVAL" in out  # the tail: the last lines
    assert "line 150" in out and "line 100\n" not in out
    assert "nothing to see" not in out  # a passing test's report carries none

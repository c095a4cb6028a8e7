"""Lint and type checks run as part of the test suite, so CI fails on either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["engine", "journal", "ufs", "fuse", "recovery", "cli", "tests", "scripts"]


def test_ruff_check() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PACKAGES],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *PACKAGES],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_scripts() -> None:
    # The benchmark scripts drive the packages' private helpers: typed, so a helper's change
    # that breaks one shows here (mypy checks files or packages in one run, not both).
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "scripts"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_tests() -> None:
    # The tests drive the packages through their types too (test doubles override engine
    # classes: a signature drifting from the base shows here). The test directories hold
    # conftest modules of one name: each is named by its path from the root.
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--explicit-package-bases", "tests"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr

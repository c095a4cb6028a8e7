"""Fixtures of the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.homes import SsdHome, write_config


@pytest.fixture
def ssd_home(home: Path, tmp_path: Path) -> SsdHome:
    """Configures the test's home with 64 KiB blocks and one cache tier, an SSD directory of
    ``quota`` (8 MiB unless told); returns the home."""

    def configure(quota: str = "8MiB") -> Path:
        write_config(home, block_size=65536, tiers=[("SSD", tmp_path / "ssd", quota)])
        return home

    return configure

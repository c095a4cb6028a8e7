"""Configuration keys that need more than a type: each bad value is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import InvalidArgument


def test_journal_preallocate_takes_a_byte_count(tmp_path: Path) -> None:
    assert load_config(str(tmp_path)).journal.preallocate == 1 << 20
    cfg = load_config(str(tmp_path), overrides={"journal.preallocate": "65536"})
    assert cfg.journal.preallocate == 65536
    assert load_config(str(tmp_path), overrides={"journal.preallocate": 0}).journal.preallocate == 0
    for bad in (-1, 1.5, "1MiB", True):
        with pytest.raises(InvalidArgument, match="journal.preallocate"):
            load_config(str(tmp_path), overrides={"journal.preallocate": bad})


def test_cluster_short_circuit_is_a_flag_on_by_default(tmp_path: Path) -> None:
    assert load_config(str(tmp_path)).cluster_short_circuit is True
    off = load_config(str(tmp_path), overrides={"cluster.short_circuit": "false"})
    assert off.cluster_short_circuit is False
    (tmp_path / "shoal.toml").write_text("[cluster]\nshort_circuit = false\n")
    assert load_config(str(tmp_path)).cluster_short_circuit is False
    for bad in ("maybe", 2):
        with pytest.raises(InvalidArgument, match="cluster.short_circuit"):
            load_config(str(tmp_path), overrides={"cluster.short_circuit": bad})

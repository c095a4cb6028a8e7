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

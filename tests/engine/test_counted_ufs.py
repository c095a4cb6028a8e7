"""The metrics' connector wrapper (engine/metrics.py) passes every call on: a call it does not
forward would answer with the base class's refusal (hard links and special files answered
EINVAL on a mount serving metrics)."""

from __future__ import annotations

import inspect
import io
import os
import stat
from pathlib import Path

from engine.metrics import CountedUnderFS
from ufs.base import UfsAttrs, UnderFS
from ufs.local import LocalUnderFS

# What the wrapper may leave to the base class: no call of the store behind it.
NOT_STORE_CALLS = {"rules_for", "name"}


def test_every_call_of_the_contract_is_forwarded() -> None:
    calls = {
        name
        for name, member in inspect.getmembers(UnderFS)
        if not name.startswith("_") and callable(member) and name not in NOT_STORE_CALLS
    }
    missing = sorted(name for name in calls if name not in vars(CountedUnderFS))
    assert not missing, f"CountedUnderFS leaves {missing} to UnderFS's defaults"


def test_links_and_special_files_through_the_wrapper(tmp_path: Path) -> None:
    root = tmp_path / "ufs"
    root.mkdir()
    ufs = CountedUnderFS(LocalUnderFS(str(root)))
    ufs.write("a", io.BytesIO(b"content"))
    assert ufs.link("a", "b").size == 7
    assert os.stat(root / "a").st_ino == os.stat(root / "b").st_ino
    made = ufs.mknod("fifo", stat.S_IFIFO | 0o640, 0, UfsAttrs(0o640, 0, 0))
    assert made.special == stat.S_IFIFO and stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)

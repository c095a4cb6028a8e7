"""The close of a small written file sends its journal messages (the block's data mark, its
entries, the sync THROUGH asks for) to the journal's writer process in one pipe write
(``Journal.held``), not one per message: counted by the kernel (/proc/self/io's write system
calls of this process), nothing mocked."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore

FILES = 20


def _write_calls() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscw:"))


# Per new file, the system calls that write besides its content commit's: MUST_CACHE writes
# its block file and, before staging its content, its CreateFile (a pipe write of its own, as
# a create through the mount is); CACHE_THROUGH writes its UFS file and its block file.
OTHER_WRITES = {"MUST_CACHE": 2, "CACHE_THROUGH": 2}


@pytest.mark.parametrize("kind", sorted(OTHER_WRITES))
def test_a_small_files_close_costs_one_journal_pipe_write(
    kind: str, tmp_path: Path, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    ssd_home()
    engine = open_engine()
    store = LocalStore(tmp_path / "ufs")
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    engine.fs.write_file("/m/first", io.BytesIO(b"1"), write_type=kind)
    engine.journal.sync()
    before = _write_calls()
    for i in range(FILES):
        engine.fs.write_file(f"/m/f{i}", io.BytesIO(b"x" * 256), write_type=kind)
    per_file = (_write_calls() - before) / FILES
    assert per_file == OTHER_WRITES[kind] + 1
    for i in range(FILES):
        assert engine.fs.read(f"/m/f{i}", 0, 1024) == b"x" * 256

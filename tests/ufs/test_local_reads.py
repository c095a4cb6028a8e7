"""How the local connector reads: only what a file holds, whatever length is asked for."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

from ufs.local import LocalUnderFS

KiB, MiB = 1 << 10, 1 << 20


def test_a_block_sized_read_of_a_small_local_file_allocates_only_the_files_bytes(
    tmp_path: Path,
) -> None:
    # The miss path asks for a whole block (4 MiB by default) of every file; a small file's
    # read must not allocate the block (a 4 MiB buffer mapped, then shrunk, per cold read).
    data = os.urandom(110 * KiB)
    (tmp_path / "f").write_bytes(data)
    ufs = LocalUnderFS(str(tmp_path))
    tracemalloc.start()
    try:
        got, fingerprint = ufs.read_checked("f", 0, 4 * MiB)
        tail = ufs.read_checked("f", 100 * KiB, 4 * MiB)[0]
        past = ufs.read_checked("f", 200 * KiB, 4 * MiB)[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == data and tail == data[100 * KiB :] and past == b""
    assert fingerprint is not None
    assert peak < 1 * MiB, f"reading 110 KiB allocated {peak} bytes at its peak"

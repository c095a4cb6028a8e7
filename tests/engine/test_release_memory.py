"""The engine's close as the daemon's (``release_memory``): the MEM tier emptied into the disk
tier, journaled, and the state it leaves passes fsck's checks, as every test engine's does."""

from __future__ import annotations

import os
from pathlib import Path

from engine.config import default_tiers
from tests.invariants import OpenEngine


def test_a_checked_engine_closes_as_the_daemon_does_and_its_blocks_move_to_disk(
    open_engine: OpenEngine, home: Path, tmp_path: Path
) -> None:
    mem = default_tiers(str(home))[0]
    assert mem.name == "MEM", "this test needs /dev/shm"
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    data = os.urandom(300_000)
    (ufs / "f").write_bytes(data)
    engine = open_engine()
    engine.mounts.mount("/", str(ufs), {})
    assert engine.fs.read("/f", 0, len(data)) == data
    assert engine.cache is not None
    engine.cache.drain()  # what the read fetched is cached in the background: wait for it
    assert {info.tier for info in engine.state.blocks[engine.ns.lookup("/f").id].values()} == {
        "MEM"
    }
    engine.close(release_memory=True)  # fsck's checks first, then the daemon's close
    assert not os.path.exists(mem.paths[0])

    again = open_engine()
    node = again.ns.lookup("/f")
    assert {info.tier for info in again.state.blocks[node.id].values()} == {"SSD"}
    assert again.fs.read("/f", 0, len(data)) == data

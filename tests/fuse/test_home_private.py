"""A mounted home is its owner's only: after a mount, writes, a checkpoint and an unmount,
over a local store and over S3 (moto over HTTP), everything in the home and in its MEM tier is
0700 / 0600 whatever the umask, and another user can read neither a log segment nor the names
in it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.shoal_cli import segments, shoal
from tests.cli.test_home_modes import mem_tier, open_modes, tree
from tests.fuse.mounting import mounted
from tests.fuse.otheruser import as_nobody, reachable_dir, store_of


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A directory other users can enter (a test's tmp_path is root's only)."""
    with reachable_dir("shoal-homesec-") as base:
        yield base


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_every_file_of_a_mounted_home_is_private(
    reachable: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    old = os.umask(0)  # the daemon inherits it: nothing narrows the modes Shoal asks for
    try:
        with mounted(store_of(kind, reachable, request), reachable, "allow_other") as m:
            home = m.home
            (m.path / "dir").mkdir(mode=0o700)  # its names: neither through the mount, nor the log
            (m.path / "dir" / "secret-name.txt").write_bytes(b"x" * 300_000)
            assert (m.path / "dir" / "secret-name.txt").read_bytes() == b"x" * 300_000
            shoal("journal", "checkpoint", home=home)  # through the daemon's admin channel
            live = open_modes(home, mem_tier(home))
            names = {p.name for p, _st in tree(home, mem_tier(home))}
            segment = segments(home)[0]
            code = (
                f"try:\n    open({str(segment)!r}, 'rb').read()\n    print('read it')\n"
                f"except PermissionError:\n    print('refused')\n"
                f"print(sorted(os.listdir({str(home)!r})) if os.access({str(home)!r}, os.R_OK)"
                " else 'unlistable')\n"
                f"attempt('list', lambda: os.listdir({str(m.path / 'dir')!r}))\n"
            )
            other = as_nobody(code)
        after = open_modes(home, mem_tier(home))  # the final checkpoint, the log's last lines
    finally:
        os.umask(old)
    # What the mount made: the journal, a checkpoint, logs, the pid file, the admin socket,
    # the spool, the MEM tier with its block files.
    assert other.stdout.split("\n")[:3] == ["refused", "unlistable", "list EACCES"], other
    assert {"admin.sock", "daemon.pid", "shoal.log", "spool", "checkpoints"} <= names
    assert any(name.endswith(".blk") for name in names)
    assert live == {}
    assert after == {}

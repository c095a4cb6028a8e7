"""A mounted home is its owner's only: after a mount, writes, a checkpoint and an unmount,
everything in the home and in its MEM tier is 0700 / 0600 whatever the umask, and another user
can read neither a log segment nor the names in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.shoal_cli import segments, shoal
from tests.cli.test_home_modes import mem_tier, open_modes, tree
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore

NOBODY = 65534
PYTHON = next(
    (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None
)


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A directory other users can enter (a test's tmp_path is root's only)."""
    base = Path(tempfile.mkdtemp(prefix="shoal-homesec-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    assert PYTHON is not None
    return subprocess.run(
        [PYTHON, "-c", code],
        user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
        cwd="/", timeout=60,
    )  # fmt: skip


def test_every_file_of_a_mounted_home_is_private(reachable: Path) -> None:
    old = os.umask(0)  # the daemon inherits it: nothing narrows the modes Shoal asks for
    try:
        with mounted(LocalStore(reachable / "ufs"), reachable) as m:
            home = m.home
            (m.path / "dir").mkdir()
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
            )
            other = as_nobody("import os\n" + code) if PYTHON else None
        after = open_modes(home, mem_tier(home))  # the final checkpoint, the log's last lines
    finally:
        os.umask(old)
    # What the mount made: the journal, a checkpoint, logs, the pid file, the admin socket,
    # the spool, the MEM tier with its block files.
    if other is not None:
        assert other.stdout.split("\n")[:2] == ["refused", "unlistable"], other
    assert {"admin.sock", "daemon.pid", "shoal.log", "spool", "checkpoints"} <= names
    assert any(name.endswith(".blk") for name in names)
    assert live == {}
    assert after == {}

"""Long commands show progress on the user's terminal, through the daemon as offline, and
nothing of it in a script (issue 17, defect 2)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.shoal_cli import env, shoal
from tests.cli.terminal import shoal_on_terminal
from tests.fuse.mounting import Mounted


def test_load_through_the_daemon_draws_a_bar_on_the_terminal(local_mount: Mounted) -> None:
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    (ufs / "train").mkdir()
    for i in range(4):
        (ufs / "train" / f"img{i}.jpg").write_bytes(os.urandom(300_000))
    train = str(local_mount.path / "train")

    code, screen = shoal_on_terminal("fs", "load", "-R", train)
    assert code == 0, screen
    assert "4 file(s) loaded" in screen  # it did run through the daemon
    assert "loading 4 files" in screen and "100%" in screen, screen
    assert "|" in screen  # a bar, drawn with tqdm's meter

    code, screen = shoal_on_terminal("fs", "free", "-R", train)
    assert code == 0, screen
    assert "freeing" in screen and "4/4" in screen, screen

    code, screen = shoal_on_terminal("journal", "checkpoint", "--home", str(local_mount.home))
    assert code == 0 and "writing a checkpoint of" in screen, screen
    assert "wrote checkpoint" in screen

    # A script (no terminal) gets the summary only.
    quiet = shoal("fs", "load", "-R", train, env=env())
    assert "4 file(s) loaded" in quiet.stdout
    assert "loading" not in quiet.stderr and "%" not in quiet.stderr, quiet.stderr

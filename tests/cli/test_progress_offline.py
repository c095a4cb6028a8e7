"""Long offline commands show progress on a terminal and none in a script (issue 17, defect 2)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.shoal_cli import shoal
from tests.cli.terminal import shoal_on_terminal


def test_fsck_shows_its_checks_on_a_terminal_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "/data", home=home)

    code, screen = shoal_on_terminal("fsck", "--home", str(home))
    assert code == 0, screen
    assert "checking" in screen and "100%" in screen and "check/s" in screen, screen
    assert "clean" in screen
    code, screen = shoal_on_terminal("fsck", "--home", str(home), size=None)
    assert code == 0 and "checking" in screen and "100%" in screen, screen

    quiet = shoal("fsck", home=home)
    assert "checking" not in quiet.stderr and "%" not in quiet.stderr, quiet.stderr
    assert "clean" in quiet.stdout


def test_journal_checkpoint_shows_it_is_working_on_a_terminal_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "/data", home=home)

    code, screen = shoal_on_terminal("journal", "checkpoint", "--home", str(home))
    assert code == 0, screen
    assert "writing a checkpoint of 2 inodes: 00:00" in screen, screen
    assert "wrote checkpoint" in screen

    quiet = shoal("journal", "checkpoint", home=home)
    assert "writing a checkpoint" not in quiet.stderr, quiet.stderr

"""A home is its owner's only: created 0700 / 0600 whatever the umask, a home an older version
left open (0755 / 0644) tightened when it is opened for use and reported by `shoal fsck` until
then, and refused with the command to run when another user owns what is too open."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import default_tiers
from engine.engine import Engine
from tests.cli.shoal_cli import ROOT, env, segments, shoal
from tests.homes import track

NOBODY = 65534


def tree(*roots: Path | str) -> Iterator[tuple[Path, os.stat_result]]:
    """Every directory and file at or below ``roots`` (symlinks not followed)."""
    for root in roots:
        if not os.path.lexists(root):
            continue
        yield Path(root), os.lstat(root)
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder) / name
                yield path, os.lstat(path)


def open_modes(*roots: Path | str) -> dict[str, str]:
    """What is not 0700 (a directory) or 0600 (anything else)."""
    wrong = {}
    for path, st in tree(*roots):
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != want:
            wrong[str(path)] = f"{stat.S_IMODE(st.st_mode):04o}"
    return wrong


def mem_tier(home: Path) -> str:
    return default_tiers(str(home))[0].paths[0]


@pytest.fixture
def umask_0() -> Iterator[None]:
    """The most permissive umask: nothing narrows the modes Shoal asks for."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def make_old_home(home: Path) -> list[str]:
    """A home as an older version left it: directories 0755, files 0644 (the MEM tier too);
    returns every path in it."""
    ufs = home.parent / "ufs"
    ufs.mkdir()
    shoal("fs", "mount", "/", str(ufs), home=home)
    shoal("fs", "mkdir", "-p", "/a/b", home=home)
    put = ["fs", "put", "--write-type", "CACHE_THROUGH", "-", "/a/b/data"]
    shoal(*put, home=home, input="cached bytes " * 1000)
    shoal("journal", "checkpoint", home=home)
    (home / "logs").mkdir()
    (home / "logs" / "shoal.log").write_text("an old log\n")
    os.makedirs(mem_tier(home), exist_ok=True)
    paths = []
    for path, st in tree(home, mem_tier(home)):
        path.chmod(0o755 if stat.S_ISDIR(st.st_mode) else 0o644)
        paths.append(str(path))
    return paths


def test_an_old_home_is_reported_then_tightened_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = make_old_home(home)
    assert len(open_modes(home, mem_tier(home))) == len(paths) > 10
    # fsck (an inspection) changes nothing: it names what is too open.
    fsck = shoal("fsck", home=home, expect=1).stdout
    assert "FAIL  home-modes" in fsck
    assert all(p in fsck for p in (str(home), str(segments(home)[0]), mem_tier(home)))
    assert len(open_modes(home, mem_tier(home))) == len(paths)
    # The first open for use tightens everything and says so, once per path.
    warned = shoal("fs", "ls", "/a", home=home).stderr.splitlines()
    tightened = [line for line in warned if "open to other users: tightened" in line]
    assert len(tightened) == len(paths), warned
    for path in paths:
        assert sum(f" {path} was mode" in line for line in tightened) == 1, path
    assert open_modes(home, mem_tier(home)) == {}
    assert "tightened" not in shoal("fs", "ls", "/a", home=home).stderr  # nothing left to do
    assert "ok    home-modes" in shoal("fsck", home=home).stdout


def test_fsck_repair_tightens(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_old_home(home)
    shoal("fsck", "--repair", home=home)
    assert open_modes(home, mem_tier(home)) == {}
    assert "ok    home-modes" in shoal("fsck", home=home).stdout


def test_a_new_home_is_private_whatever_the_umask(tmp_path: Path, umask_0: None) -> None:
    home, ufs = tmp_path / "home", tmp_path / "ufs"
    ufs.mkdir()
    shoal("fs", "mount", "/", str(ufs), home=home)
    shoal("fs", "mkdir", "/d", home=home)
    put = ["fs", "put", "--write-type", "CACHE_THROUGH", "-", "/d/f"]
    shoal(*put, home=home, input="cached bytes " * 1000)
    shoal("journal", "checkpoint", home=home)
    assert segments(home) and list((home / "journal" / "checkpoints").iterdir())
    assert any(p.suffix == ".blk" for p, _st in tree(home, mem_tier(home)))
    assert open_modes(home, mem_tier(home)) == {}


def as_nobody(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--home", str(home), *args],
        user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
        cwd=ROOT, env=env(), timeout=120,
    )  # fmt: skip


def test_what_another_user_owns_is_refused_with_the_command_to_run() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to give files to another user")
    base = Path(tempfile.mkdtemp(prefix="shoal-homesec-"))
    base.chmod(0o755)  # the other user can reach the home
    home = track(base / "home")
    try:
        make_old_home(home)
        for path, _st in tree(home, mem_tier(home)):
            os.lchown(path, NOBODY, NOBODY)
        stray = home / "logs" / "left-by-root.log"  # root wrote a file there once
        stray.write_text("x")
        stray.chmod(0o644)
        probe = as_nobody("fs", "ls", "/", home=base)  # a home nobody can use at all
        if "No module named" in probe.stderr or "Permission denied: '" in probe.stderr:
            pytest.skip(f"user nobody cannot run this interpreter: {probe.stderr[-200:]}")
        refused = as_nobody("fs", "ls", "/a", home=home)
        assert refused.returncode == 1, refused.stderr
        assert str(stray) in refused.stderr and "mode 0644" in refused.stderr
        assert f"chmod -R go-rwx {home}" in refused.stderr and "Traceback" not in refused.stderr
        assert stat.S_IMODE(stray.stat().st_mode) == 0o644
        # Once its owner has run that, the other user's start goes on.
        subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)
        done = as_nobody("fs", "ls", "/a", home=home)
        assert done.returncode == 0 and done.stdout.split()[-1] == "b", done.stderr
    finally:
        shutil.rmtree(mem_tier(home), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("planted", ["directory", "symlink"])
def test_a_tier_directory_another_user_planted_is_refused(tmp_path: Path, planted: str) -> None:
    """The MEM tier's directory has a name anyone can work out (/dev/shm/shoal-<hash of the
    home's path>). Made there first by another user, it used to be taken as it was: that user
    could then replace the cached blocks written into it (a CRC-32 is easy to match) or read
    what a later mode change let through. A tier directory this user does not own, or a
    symbolic link another user owns, is refused, naming it, before anything is written."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to give files to another user")
    home, ufs, elsewhere = tmp_path / "home", tmp_path / "ufs", tmp_path / "theirs"
    ufs.mkdir()
    elsewhere.mkdir(mode=0o700)
    os.chown(elsewhere, NOBODY, NOBODY)
    tier = mem_tier(home)
    try:
        if planted == "directory":
            os.mkdir(tier, 0o700)
            os.chown(tier, NOBODY, NOBODY)
        else:
            os.symlink(elsewhere, tier)
            os.lchown(tier, NOBODY, NOBODY)
        refused = shoal("fs", "mount", "/", str(ufs), home=home, expect=None)
        assert refused.returncode != 0, refused.stderr
        assert tier in refused.stderr and f"uid {NOBODY}" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        assert list(elsewhere.iterdir()) == [] and os.listdir(tier) == []
        # Once it is gone, a start makes the directory, its own, before anything is cached.
        os.unlink(tier) if planted == "symlink" else os.rmdir(tier)
        engine = Engine.open_home(str(home))
        try:
            st = os.lstat(tier)
            assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            assert stat.S_IMODE(st.st_mode) == 0o700
        finally:
            engine.close()
        shoal("fs", "mount", "/", str(ufs), home=home)
    finally:
        if os.path.islink(tier):
            os.unlink(tier)
        else:
            shutil.rmtree(tier, ignore_errors=True)

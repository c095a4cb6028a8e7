"""`pip install .` as a user does it: the wheel built from the repository, installed into a truly
clean virtual environment (no system site-packages, no test extras, not run from the checkout),
then mounted, read and unmounted through its own `shoal` command.

Dependencies come from the configured package index, and from wheels repacked from this
interpreter's installed ones (tests/cli/wheelhouse.py) where the index cannot serve them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import default_tiers
from fuse.mountinfo import served
from tests.cli import wheelhouse
from tests.cli.shoal_cli import ROOT

pytestmark = pytest.mark.install

RUNTIME_PACKAGES = ("cli", "engine", "fuse", "journal", "recovery", "ufs")

# Not part of the wheel, nor of what is built from: the wheel must stand without them.
_LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", "tests", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def _run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # Nothing of the checkout may leak in: no PYTHONPATH, a working directory outside it.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SHOAL_HOME")}
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    said = f"{done.args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, said
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the repository's runtime files."""
    top = tmp_path_factory.mktemp("wheel-build")
    source, dist = top / "source", top / "dist"
    shutil.copytree(ROOT, source, ignore=_LEFT_OUT)
    # Built in isolation, as `pip install .` builds: setuptools as pyproject.toml asks, from the
    # index, not whatever this environment has (a fresh Python 3.11 venv has 66, too old).
    _ok(_run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--retries", "0",
             "-w", dist, source, cwd=top))  # fmt: skip
    (built,) = dist.glob("shoal-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtual environment with the repository's wheel installed, runtime only."""
    top = tmp_path_factory.mktemp("wheel-install")
    house, env_dir = top / "house", top / "venv"
    wheelhouse.build(wheel, house)
    _ok(_run(sys.executable, "-m", "venv", env_dir, cwd=top))
    # --retries 0: an index that cannot be reached is given up at once, the wheelhouse serves.
    _ok(_run(env_dir / "bin/python", "-m", "pip", "install", "--retries", "0",
             "--find-links", house, wheel, cwd=top))  # fmt: skip
    return env_dir


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    mnt = tmp_path / "mnt"
    if served(str(mnt)) is not None or os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)


def test_wheel_holds_every_runtime_module(wheel: Path) -> None:
    """A package left out of pyproject.toml's list works from the checkout, not installed."""
    with zipfile.ZipFile(wheel) as zf:
        held = {name for name in zf.namelist() if name.endswith(".py")}
    runtime = {
        str(path.relative_to(ROOT))
        for top in RUNTIME_PACKAGES
        for path in (ROOT / top).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert runtime - held == set()
    assert not {name for name in held if name.startswith("tests/")}


def test_wheel_has_no_test_tools(venv: Path, scratch: Path) -> None:
    done = _ok(_run(venv / "bin/python", "-m", "pip", "list", "--format=freeze", cwd=scratch))
    installed = {line.split("==")[0].lower() for line in done.stdout.split()}
    assert not installed & {"pytest", "hypothesis", "moto", "mypy", "ruff", "matplotlib"}
    where = _ok(_run(venv / "bin/python", "-c", "import cli; print(cli.__file__)", cwd=scratch))
    assert where.stdout.startswith(str(venv)), where.stdout


def test_wheel_mounts_reads_and_unmounts_clean(venv: Path, scratch: Path) -> None:
    shoal = venv / "bin/shoal"
    assert "usage: shoal" in _ok(_run(shoal, "--help", cwd=scratch)).stdout
    assert _ok(_run(shoal, "--version", cwd=scratch)).stdout.startswith("shoal ")
    src, mnt, home = scratch / "src", scratch / "mnt", scratch / "home"
    src.mkdir()
    mnt.mkdir()
    # Run from a project of the user's that has a package of one of Shoal's top-level names:
    # the daemon must still import the installed Shoal, not that.
    (scratch / "engine").mkdir()
    (scratch / "engine" / "__init__.py").write_text('"""the user\'s own engine"""\n')
    content = os.urandom(3 * (1 << 20) + 12345)
    (src / "sample.bin").write_bytes(content)
    (mem,) = [t.paths[0] for t in default_tiers(str(home)) if t.name == "MEM"]
    _ok(_run(shoal, "--home", home, "mount", src, mnt, cwd=scratch))
    try:
        assert (mnt / "sample.bin").read_bytes() == content
        # Blocks are stored behind the reader (engine/cache/storer.py): wait for the storer.
        _ok(_run(shoal, "--home", home, "report", "--idle", cwd=scratch))
        assert os.path.isdir(mem)  # the read was cached in RAM...
    finally:
        _ok(_run(shoal, "umount", mnt, cwd=scratch))
    assert not os.path.ismount(mnt)
    assert not os.path.exists(mem)  # ...and umount gave that RAM back


@pytest.mark.parametrize(
    ("bench", "missing"),
    [(["read"], "moto"), (["cache", "--block-sizes", "1"], "moto"),
     (["read", "--chart", "c.png"], "matplotlib")],
)  # fmt: skip
def test_wheel_bench_without_extras_says_so(
    venv: Path, scratch: Path, bench: list[str], missing: str
) -> None:
    done = _run(venv / "bin/shoal", "bench", *bench, cwd=scratch, timeout=120)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"needs {missing}" in done.stderr and "shoal[test]" in done.stderr, done.stderr

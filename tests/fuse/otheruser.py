"""Another user on a real mount: user nobody (65534) running Python through an ``allow_other``
mount made in a directory other users can reach (a test's tmp_path is root's only), over a
local UFS and over S3 (moto over HTTP). One place for what the POSIX group modules share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli.bench.s3server import S3Server
from tests.fuse.mounting import Mounted, mounted
from tests.ufs.stores import LocalStore, S3Store, Store

NOBODY = 65534
OTHER = 1000  # a user that is neither root nor nobody
# Another user cannot run the venv's interpreter where it lives below /root: use the system's
# (the code it runs needs only the standard library).
PYTHON = next(
    (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)),
    sys.executable,
)

# Defines attempt(what, call) in the code run as nobody: prints "what allowed", or "what " and
# the errno's name, so a test compares every outcome at once.
ATTEMPT = """
def attempt(what, call):
    try:
        call()
        print(what, 'allowed')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
"""


def as_nobody(code: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """Runs Python ``code`` as user and group nobody (65534), no supplementary groups, with
    ``os``, ``errno``, ``sys`` imported and ``attempt`` (ATTEMPT) defined."""
    prelude = f"import os, errno, sys\nos.umask({umask:#o})\n" + ATTEMPT
    return subprocess.run(
        [PYTHON, "-c", prelude + code],
        user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
        cwd="/", timeout=60,
    )  # fmt: skip


def nobody_says(code: str, umask: int = 0o022) -> list[str]:
    """The output lines of ``code`` run by ``as_nobody``, which must exit 0."""
    done = as_nobody(code, umask)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@contextmanager
def reachable_dir(prefix: str) -> Iterator[Path]:
    """A new directory of mode 0755 that other users can enter, removed after."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def store_of(kind: str, base: Path, request: pytest.FixtureRequest) -> Store:
    """An empty store of ``kind`` ("local": in ``base``/ufs; "s3": a bucket of its own)."""
    if kind == "local":
        return LocalStore(base / "ufs")
    server: S3Server = request.getfixturevalue("s3_server")
    return S3Store(server)


def store_root(m: Mounted) -> Path | None:
    """The directory of a mount's local store; None for S3."""
    store = m.store  # type: ignore[attr-defined]
    return store.root if isinstance(store, LocalStore) else None


@pytest.fixture
def shared_mount() -> Iterator[Mounted]:
    """A mount other users may use (-o allow_other) over a local UFS."""
    with reachable_dir("shoal-posix-") as base:
        with mounted(LocalStore(base / "ufs"), base, "allow_other") as m:
            yield m


@pytest.fixture(params=["local", "s3"])
def shared_any_mount(request: pytest.FixtureRequest) -> Iterator[Mounted]:
    """A mount other users may use (-o allow_other) over each kind of UFS, with a directory
    ``pub`` of mode 1777 (root's, sticky: /tmp's) where they make their own files."""
    with reachable_dir("shoal-shared-") as base:
        with mounted(store_of(request.param, base, request), base, "allow_other") as m:
            (m.path / "pub").mkdir()
            os.chmod(m.path / "pub", 0o1777)
            yield m

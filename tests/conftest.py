"""Puts the repository root on sys.path so tests import the packages without installing them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


import pytest  # noqa: E402

from cli.bench.s3server import S3Server, start_s3_server  # noqa: E402
from tests.ufs.stores import LocalStore, S3Store, Store  # noqa: E402


@pytest.fixture(scope="session")
def s3_server() -> object:
    """One moto server for the session; tests make their own buckets."""
    server: S3Server = start_s3_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty UFS of each kind that tests can also change directly."""
    if request.param == "local":
        yield LocalStore(tmp_path / "ufs")
    else:
        yield S3Store(request.getfixturevalue("s3_server"))


@pytest.fixture(autouse=True)
def no_cache_left_in_shm() -> Iterator[None]:
    """Homes made by tests get the default MEM tier on /dev/shm; take away what they left."""
    import glob
    import shutil

    before = set(glob.glob("/dev/shm/shoal-*"))
    yield
    for path in set(glob.glob("/dev/shm/shoal-*")) - before:
        shutil.rmtree(path, ignore_errors=True)

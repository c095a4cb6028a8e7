"""Fixtures that really mount (CI runs as root; /dev/fuse works)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuse.mounting import Mounted, mounted
from tests.fuse.otheruser import shared_any_mount, shared_mount  # noqa: F401 (fixtures)
from tests.ufs.stores import LocalStore, Store


@pytest.fixture
def local_mount(tmp_path: Path) -> Iterator[Mounted]:
    with mounted(LocalStore(tmp_path / "ufs"), tmp_path) as m:
        yield m


@pytest.fixture
def any_mount(store: Store, tmp_path: Path) -> Iterator[Mounted]:
    """A mount over each kind of UFS: a local directory, and S3 (moto over HTTP)."""
    with mounted(store, tmp_path) as m:
        yield m

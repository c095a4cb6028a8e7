"""Fixtures that really mount (CI runs as root; /dev/fuse works)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuse.mounting import Mounted
from tests.ufs.stores import LocalStore, Store


@pytest.fixture
def local_mount(tmp_path: Path) -> Iterator[Mounted]:
    store = LocalStore(tmp_path / "ufs")
    m = Mounted(tmp_path / "home", store.uri, tmp_path / "mnt")
    m.store = store  # type: ignore[attr-defined]
    m.mount()
    try:
        yield m
    finally:
        m.teardown()


@pytest.fixture
def any_mount(store: Store, tmp_path: Path) -> Iterator[Mounted]:
    """A mount over each kind of UFS: a local directory, and S3 (moto over HTTP)."""
    m = Mounted(tmp_path / "home", store.uri, tmp_path / "mnt", store.options)
    m.store = store  # type: ignore[attr-defined]
    m.mount()
    try:
        yield m
    finally:
        m.teardown()

"""Fixtures shared by the test suite: the S3 server, UFS stores, fault proxies, homes and the
engines opened on them. Puts the repository root on sys.path so tests import the packages
without installing them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


import pytest  # noqa: E402

from cli.bench.azurite import Azurite, start_azurite  # noqa: E402
from cli.bench.faultproxy import FaultProxy  # noqa: E402
from cli.bench.gcsserver import GCSServer, start_gcs_server  # noqa: E402
from cli.bench.s3server import S3Server, start_s3_server  # noqa: E402
from tests.fuse import mounting  # noqa: E402
from tests.homes import remove_test_mem_tiers  # noqa: E402
from tests.invariants import CheckedEngine, OpenEngine  # noqa: E402
from tests.ufs.stores import AzureStore, GCSStore, LocalStore, S3Store, Store  # noqa: E402


@pytest.fixture(scope="session")
def s3_server() -> object:
    """One moto server for the session; tests make their own buckets."""
    server: S3Server = start_s3_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite (Azure Blob) for the session on 127.0.0.1; tests make their own containers."""
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """One GCS emulator for the session on 127.0.0.1; tests make their own buckets."""
    server = start_gcs_server()
    try:
        yield server
    finally:
        server.stop()


# Every test over the generic `store` runs on local and S3; the blob stores' own contract, fault
# and mount tests always run (tests/ufs/test_azure*.py and test_gcs*.py, tests/fuse/test_*_mount.py)
# and SHOAL_TEST_STORES=local,s3,azure,gcs runs the rest on them too: CI's 30 minutes on 2 cores
# would not hold every engine and mount test once more per emulator.
STORES = os.environ.get("SHOAL_TEST_STORES", "local,s3").split(",")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty UFS of each kind that tests can also change directly."""
    if request.param == "local":
        yield LocalStore(tmp_path / "ufs")
    elif request.param == "s3":
        yield S3Store(request.getfixturevalue("s3_server"))
    elif request.param == "azure":
        yield AzureStore(request.getfixturevalue("azurite"))
    elif request.param == "gcs":
        yield GCSStore(request.getfixturevalue("gcs_server"))
    else:
        raise ValueError(f"SHOAL_TEST_STORES: unknown store {request.param!r}")


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A fault proxy in front of the S3 server (faults added by the test)."""
    p = FaultProxy(s3_server.endpoint).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def azure_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    """A fault proxy in front of Azurite (faults added by the test)."""
    p = FaultProxy(azurite.endpoint.rsplit("/", 1)[0]).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def gcs_proxy(gcs_server: GCSServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of the GCS emulator (faults added by the test)."""
    p = FaultProxy(gcs_server.endpoint).start()
    try:
        yield p
    finally:
        p.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    mounting.made.clear()  # the mounts of the test about to run, and no earlier one's


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failing test's report carries the tail of each of its mount daemons' logs: the only
    trace of what a daemon answered, and its temporary directory goes with later runs."""
    outcome: Any = yield  # pluggy's result of the hooks it wraps
    report = outcome.get_result()
    if report.failed:
        for title, tail in mounting.daemon_logs():
            report.sections.append((title, tail))


@pytest.fixture(autouse=True)
def own_mem_tiers(tmp_path: Path) -> Iterator[None]:
    """Homes with the default tiers keep a MEM tier on /dev/shm: after the test, remove those of
    the homes this test made (tests/homes.py), and nothing else."""
    yield
    remove_test_mem_tiers(tmp_path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home directory of the test's own."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def open_engine(home: Path) -> Iterator[OpenEngine]:
    """Opens engines (on ``home`` unless told another): each one runs fsck's checks when it
    closes, and those the test leaves open are checked and closed after it."""
    opened: list[CheckedEngine] = []

    def open_(at: Path | str | None = None, overrides: dict[str, Any] | None = None,
              **kwargs: Any) -> CheckedEngine:  # fmt: skip
        engine = CheckedEngine.open_home(str(at or home), overrides, **kwargs)
        assert isinstance(engine, CheckedEngine)
        opened.append(engine)
        return engine

    yield open_
    failures = []
    for engine in opened:
        if not engine.closed:
            try:
                engine.close()
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)


@pytest.fixture
def engine(open_engine: OpenEngine) -> CheckedEngine:
    """An engine on the test's home, fsck-checked and closed after the test."""
    return open_engine()

"""Fixtures of cluster mode: a private etcd, the cluster's token, and `shoal worker` processes
(real ones: started with the real command line, stopped or killed by the test, always gone
after it)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from cli.bench.clusterprocs import option_args, stop_process
from cli.bench.etcdserver import EtcdServer, has_etcd, start_etcd
from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server, free_port, s3_client
from engine.cache.tiers import TEMP_PREFIX, TIER_MARK
from fuse.mountinfo import alive
from tests.cli.shoal_cli import ROOT, env, shoal
from tests.fuse.mounting import Mounted
from tests.homes import track, write_config

TOKEN = "cluster-token-for-tests-3b9e"


def stored_bytes(cache: Path) -> int:
    """Bytes of the blocks stored in tier directory ``cache``. A block being written is a
    temporary file, renamed into place when done: not stored yet, and it may be gone by the
    time it is looked at (as may a block evicted meanwhile)."""
    total = 0
    for path in cache.rglob("*"):
        if path.name.startswith(TEMP_PREFIX) or path.name == TIER_MARK:
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    if not has_etcd():
        pytest.fail("etcd is not installed (scripts/install.sh installs etcd-server)")
    server = start_etcd(tmp_path / "etcd")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


class WorkerProcess:
    """One `shoal worker` with a home of its own and one SSD tier of ``quota`` bytes."""

    def __init__(self, base: Path, name: str, quota: int) -> None:
        self.home = track(base / name)
        self.home.mkdir(parents=True)
        self.cache = self.home / "cache"
        write_config(self.home, tiers=[("SSD", self.cache, quota)])
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, cluster_url: str, token: Path, uri: str, options: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "cli.main", "--home", str(self.home), "worker",
                "--cluster", cluster_url, "--listen", self.addr, "--id", self.name,
                "--cluster-token-file", str(token), *option_args(options)]  # fmt: skip
        log = open(self.home / "worker.out", "ab")  # noqa: SIM115 - the child's
        with log:
            self.process = subprocess.Popen(
                [*argv, uri], cwd=ROOT, env=env(), stdout=log, stderr=log,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"ready" not in (self.home / "worker.out").read_bytes():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def output(self) -> str:
        return (self.home / "worker.out").read_text(errors="replace")

    def cached_bytes(self) -> int:
        return stored_bytes(self.cache)

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        assert self.process is None or not alive(self.process.pid)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """The test's workers (made with ``WorkerProcess``, appended here): stopped after it."""
    made: list[WorkerProcess] = []
    try:
        yield made
    finally:
        for worker in made:
            worker.stop()


def get(addr: str, path: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
    return urllib3.request("GET", f"http://{addr}{path}", headers=headers, retries=False,
                           timeout=10)  # fmt: skip


def cluster_client(tmp_path: Path, name: str, uri: str, options: dict[str, str], url: str,
                   token: Path, quota: int = 8 << 20) -> Mounted:  # fmt: skip
    """A `shoal mount --cluster` FUSE client of its own home (one SSD tier of ``quota``),
    mounted; the caller tears it down."""
    home, mnt = tmp_path / f"{name}-home", tmp_path / f"{name}-mnt"
    client = Mounted(home, uri, mnt, options)
    home.mkdir()
    write_config(home, tiers=[("SSD", home / "cache", quota)])
    args = ["mount", "--cluster", url, "--cluster-token-file", str(token), *option_args(options)]
    try:
        shoal(*args, uri, str(mnt), home=home)
    except BaseException:
        client.teardown()  # whatever a failed mount left
        raise
    return client


def s3_dataset(s3_server: S3Server, proxy: FaultProxy, tmp_path: Path, bucket: str,
               files: dict[str, bytes]) -> dict[str, str]:  # fmt: skip
    """``files`` put under ds/ in a new bucket; the options of a store reaching it through the
    proxy (which logs each request), its secret key in a file of its own."""
    s3 = s3_client(s3_server.endpoint)
    s3.create_bucket(Bucket=bucket)
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"ds/{name}", Body=data)
    secret = tmp_path / "s3.secret"
    secret.write_text(SECRET_KEY)
    secret.chmod(0o600)
    return {"endpoint": proxy.endpoint, "path_style": "true", "region": "us-east-1",
            "access_key": ACCESS_KEY, "secret_key_file": str(secret)}  # fmt: skip


class CombinedNode:
    """One `shoal mount --cluster --serve`: a FUSE client and a worker in one daemon, with a
    home of its own (one SSD tier of ``quota``) and its block service on a port of its own."""

    def __init__(self, base: Path, name: str, quota: int) -> None:
        self.name = name
        home = base / f"{name}-home"
        home.mkdir(parents=True)
        self.cache = home / "cache"
        write_config(home, tiers=[("SSD", self.cache, quota)])
        self.addr = f"127.0.0.1:{free_port()}"
        self.mount: Mounted | None = None
        self.home, self.mnt = home, base / f"{name}-mnt"

    def start(self, cluster_url: str, token: Path, uri: str, options: dict[str, str]) -> None:
        self.mount = Mounted(self.home, uri, self.mnt, options)
        args = ["mount", "--cluster", cluster_url, "--cluster-token-file", str(token),
                "--serve", self.addr, "--id", self.name, *option_args(options)]  # fmt: skip
        shoal(*args, uri, str(self.mnt), home=self.home)

    def status(self) -> dict[str, object]:
        reply = get(self.addr, "/v1/status", {"Authorization": f"Bearer {TOKEN}"})
        assert reply.status == 200, reply.data
        return dict(json.loads(reply.data))

    def served_reads(self) -> int:
        """Reads its block service answered (GET /v1/read)."""
        service: dict[str, dict[str, int]] = self.status()["service"]  # type: ignore[assignment]
        return service["requests"].get("read", 0)

    def answered(self) -> int:
        """Requests for file bytes its block service answered: reads over HTTP, and locates of
        tier files a client on this host then reads itself (cluster.short_circuit)."""
        service: dict[str, dict[str, int]] = self.status()["service"]  # type: ignore[assignment]
        return service["requests"].get("read", 0) + service["requests"].get("locate", 0)

    def cached_bytes(self) -> int:
        return stored_bytes(self.cache)


@pytest.fixture
def combined(tmp_path: Path) -> Iterator[list[CombinedNode]]:
    """The test's combined nodes (appended here): unmounted, their daemons gone, after it."""
    made: list[CombinedNode] = []
    try:
        yield made
    finally:
        for node in made:
            if node.mount is not None:
                node.mount.teardown()

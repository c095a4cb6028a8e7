"""The processes `shoal bench cluster` runs (cli/bench/cluster.py): `shoal worker`s and `shoal
mount`s over one S3 bucket, each with a home of its own whose one SSD tier is in the bench's
scratch directory (nothing left on /dev/shm), all started with the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import urllib3

from cli.bench.s3server import free_port

BUCKET = "bench-cluster"
URI = f"s3://{BUCKET}/ds"


def shoal(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"shoal {args[2] if args[0] == '--home' else args[0]} failed:"
                           f" {done.stderr.strip()}")  # fmt: skip


def client_fallbacks(home: str) -> int:
    """Reads a cluster client's workers did not answer (the store did): its `shoal report`."""
    done = subprocess.run([sys.executable, "-m", "cli.main", "--home", home, "report", "--json"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    view = json.loads(done.stdout)["cluster"]
    return 0 if view is None else int(view["fallbacks"])  # None: its store was never opened


def make_home(path: str, quota: int) -> str:
    os.makedirs(os.path.join(path, "cache"), exist_ok=True)
    with open(os.path.join(path, "shoal.toml"), "w") as f:
        f.write(f'[[cache.tiers]]\nname = "SSD"\npaths = ["{path}/cache"]\nquota = {quota}\n')
    return path


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminated, and killed if it has not ended a minute later (a worker's, a test's)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def option_args(options: dict[str, str]) -> list[str]:
    return [a for key, value in options.items() for a in ("-o", f"{key}={value}")]


@dataclass
class Cluster:
    """The bench's cluster: etcd's URL, the token's file, the store's options."""

    url: str
    token_file: str
    token: str
    options: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def cluster_args(self) -> list[str]:
        return ["--cluster", self.url, "--cluster-token-file", self.token_file]

    def mount_clients(self, homes: list[str], mnts: list[str]) -> list[str]:
        """Mounts the store read-only, a client of this cluster, from each home at its mount
        point (cluster.py's and clusterboth.py's separate clients)."""
        for home, mnt in zip(homes, mnts, strict=True):
            os.makedirs(mnt, exist_ok=True)
            shoal("--home", home, "mount", "-o", "ro", *self.cluster_args(),
                  *option_args(self.options), URI, mnt)  # fmt: skip
        return mnts


class Worker:
    def __init__(self, cluster: Cluster, home: str, name: str, quota: int) -> None:
        self.home, self.name = make_home(home, quota), name
        self.addr = f"127.0.0.1:{free_port()}"
        argv = [sys.executable, "-m", "cli.main", "--home", home, "worker",
                *cluster.cluster_args(), "--listen", self.addr, "--id", name,
                *option_args(cluster.options), URI]  # fmt: skip
        self.out = os.path.join(home, "worker.out")
        with open(self.out, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"worker {name} did not start (its log: {self.out})")
            time.sleep(0.1)
        self._auth = {"Authorization": f"Bearer {cluster.token}"}

    def _ready(self) -> bool:
        with open(self.out, "rb") as f:
            return b"ready" in f.read()

    def used_bytes(self) -> int:
        got = urllib3.request("GET", f"http://{self.addr}/v1/status", headers=self._auth,
                              timeout=10, retries=False)  # fmt: skip
        return int(json.loads(got.data)["used_bytes"])

    def stop(self) -> None:
        stop_process(self.process)

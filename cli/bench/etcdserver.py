"""A private etcd for tests and benchmarks of cluster mode: Debian's etcd-server binary in a
subprocess, client and peer URLs on free ports of 127.0.0.1, its data in a directory of the
caller's. A system's own etcd (the package's systemd unit) is never used nor touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cli.bench.s3server import free_port, stop_process

ETCD = "etcd"


@dataclass
class EtcdServer:
    endpoint: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]

    def cluster_url(self, name: str) -> str:
        return f"etcd://{self.endpoint.removeprefix('http://')}/{name}"

    def stop(self) -> None:
        stop_process(self.process)


def has_etcd() -> bool:
    return shutil.which(ETCD) is not None


def start_etcd(data_dir: Path) -> EtcdServer:
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    argv = [
        ETCD, "--name", "shoal-test", "--data-dir", str(data_dir),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"shoal-test={peer}",
    ]  # fmt: skip
    # The ETCD_* variables configure etcd too: none of the caller's may point it elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    log = open(data_dir.parent / f"{data_dir.name}.log", "wb")  # noqa: SIM115 - the child's
    with log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{client}/health", timeout=1).read()
            return EtcdServer(client, proc)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError(f"etcd did not start (its log: {log.name})") from None
            time.sleep(0.1)

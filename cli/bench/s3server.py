"""A real S3 endpoint for benchmarks and tests: moto's server in a subprocess on 127.0.0.1, over
HTTP (moto is a test extra: `pip install .[test]`).

Started and stopped by the benchmarks and by fixtures (tests/conftest.py); every request goes
through a real socket, so boto3's HTTP stack, retries and multipart uploads run as they would
against AWS or MinIO.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from cli.bench.extras import installed, require

ACCESS_KEY = "shoal-test-access"
SECRET_KEY = "shoal-test-secret-do-not-leak-7f3a9c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """A test server this module (or azurite.py, gcsserver.py) started: asked, then made to."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        """Drops every bucket and object (moto's reset API)."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        stop_process(self.process)


def has_moto() -> bool:
    return installed("moto")


def require_moto() -> None:
    require("moto", "this benchmark's S3 server")


def start_s3_server(env: dict[str, str] | None = None) -> S3Server:
    require_moto()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).read()
            return S3Server(endpoint, proc)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


def s3_client(endpoint: str, connections: int = 10) -> Any:
    """A client of the test server; ``connections`` sizes its pool (botocore's default is 10:
    more threads than that would open and discard connections)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(max_pool_connections=connections),
    )

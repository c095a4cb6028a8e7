"""A Google Cloud Storage endpoint for tests and benchmarks: gcp-storage-emulator (a test extra:
`pip install .[test]`) in a subprocess on 127.0.0.1, in memory, speaking GCS's JSON API over
HTTP: the google-cloud-storage client's requests, retries and resumable uploads run as they would
against storage.googleapis.com."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass

from cli.bench.extras import installed, require
from cli.bench.s3server import free_port, stop_process

# The emulator serves one request at a time (http.server's HTTPServer), with the listen backlog
# of 5 it inherits: parallel clients (a 16-thread populate) would see their connections dropped
# and time out. A deeper backlog queues them instead; the storage stays single-threaded. And
# each change rewrites the metadata of every object it holds as one JSON document, which only
# a restart on disk reads: in memory that is all cost (10,000 objects: quadratic), so it is not
# written.
LAUNCH = """
import sys, logging, http.server
http.server.HTTPServer.request_queue_size = 1024
logging.disable(logging.CRITICAL)
from gcp_storage_emulator.storage import Storage
Storage._write_config_to_file = lambda self: None
from gcp_storage_emulator.server import create_server
create_server(sys.argv[1], int(sys.argv[2]), in_memory=True).run()
"""


@dataclass
class GCSServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket (its name, made up unless given), by the JSON API's insert."""
        name = name or f"shoal-{uuid.uuid4().hex[:12]}"
        body = json.dumps({"name": name}).encode()
        req = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=shoal", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        urllib.request.urlopen(req, timeout=10).read()
        return name

    def stop(self) -> None:
        stop_process(self.process)


def has_emulator() -> bool:
    return installed("gcp_storage_emulator")


def start_gcs_server() -> GCSServer:
    require("gcp_storage_emulator", "the GCS emulator")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/storage/v1/b?project=shoal", timeout=1).read()
            return GCSServer(endpoint, proc)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError("the GCS emulator did not start") from None
            time.sleep(0.1)

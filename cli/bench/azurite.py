"""A real Azure Blob endpoint for benchmarks and tests: Azurite (the npm package, which
scripts/install.sh puts in .tools/) in a subprocess on 127.0.0.1, over HTTP, with its data in a
directory of the caller's. Every request goes through a real socket and the SDK's own HTTP
stack, signing and retries."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cli.bench.s3server import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
# Azurite's published development account (docs.microsoft.com, "Use Azurite"): not a secret.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_binary() -> str | None:
    """azurite-blob from .tools/ (scripts/install.sh), else from PATH; None if neither."""
    local = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


@dataclass
class Azurite:
    endpoint: str  # the account's blob URL: http://127.0.0.1:PORT/devstoreaccount1
    process: subprocess.Popen[bytes]

    @property
    def options(self) -> dict[str, str]:
        """The mount options of its account (the key is a credential: not among them)."""
        return {"account": ACCOUNT, "endpoint": self.endpoint}

    def stop(self) -> None:
        stop_process(self.process)


def start_azurite(location: Path) -> Azurite:
    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("azurite-blob is not installed: run scripts/install.sh")
    location.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
            str(location), "--silent", "--skipApiVersionCheck", "--disableTelemetry"]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=location,
        start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}?comp=list", timeout=1).read()
        except urllib.error.HTTPError:
            return Azurite(endpoint, proc)  # it answers (unsigned, so with a refusal)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("azurite did not start") from None
            time.sleep(0.1)
        else:
            return Azurite(endpoint, proc)

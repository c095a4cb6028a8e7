"""Short-circuit reads in cluster mode, measured (docs/cluster.md): one `shoal worker` holding
a dataset in its cache, and two FUSE clients on its host that keep nothing themselves
(read_type NO_CACHE), one reading the worker's tier files directly (the default), one with
``cluster.short_circuit = false`` (over HTTP). Warm epochs alternate between them, twice each;
files/s of each, and the ratio on/off. Run: ``python -m cli.bench.shortcircuit``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cli.bench.clusterprocs import BUCKET, URI, Cluster, Worker, make_home, option_args, shoal
from cli.bench.etcdserver import start_etcd
from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, s3_client, start_s3_server

FILES, SIZE, READERS = 600, 110_000, 4


def _cold(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:  # the kernel's pages of an earlier epoch dropped: each read reaches the daemon
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return len(os.pread(fd, os.fstat(fd).st_size + 1, 0))
    finally:
        os.close(fd)


def _epoch(mnt: str, rels: list[str], size: int, readers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(readers) as pool:
        got = sum(pool.map(_cold, [os.path.join(mnt, r) for r in rels]))
    if got != len(rels) * size:
        raise RuntimeError(f"an epoch through {mnt} read {got} bytes, not {len(rels) * size}")
    return len(rels) / (time.perf_counter() - start)


def _short_reads(home: str) -> int:
    """The client's reads from its worker's tier files (its `shoal report`)."""
    done = subprocess.run([sys.executable, "-m", "cli.main", "--home", home, "report", "--json"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(json.loads(done.stdout)["cluster"]["short_circuit_reads"])


def _secret(path: str, text: str) -> str:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(text + "\n")
    return path


def run(files: int = FILES, size: int = SIZE, readers: int = READERS) -> dict[str, Any]:
    """files/s of each warm epoch, "on" and "off", and each client's short-circuit reads."""
    scratch = tempfile.mkdtemp(prefix="shoal-bench-shortc-")
    server = start_s3_server()
    etcd = start_etcd(Path(scratch) / "etcd")
    worker: Worker | None = None
    mnts: dict[str, str] = {}
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        rels = [f"c{i % 10}/f{i:04d}.bin" for i in range(files)]
        for rel in rels:
            s3.put_object(Bucket=BUCKET, Key=f"ds/{rel}", Body=os.urandom(size))
        secret = _secret(os.path.join(scratch, "s3.secret"), SECRET_KEY)
        token = "bench-" + os.urandom(8).hex()
        options = {"endpoint": server.endpoint, "path_style": "true", "region": "us-east-1",
                   "access_key": ACCESS_KEY, "secret_key_file": secret}  # fmt: skip
        token_file = _secret(os.path.join(scratch, "token"), token)
        cluster = Cluster(etcd.cluster_url("shortc"), token_file, token, options)
        worker = Worker(cluster, os.path.join(scratch, "w1"), "w1", 1 << 30)
        homes: dict[str, str] = {}
        for name, flag in (("on", "true"), ("off", "false")):
            homes[name] = make_home(os.path.join(scratch, f"{name}-home"), 64 << 20)
            mnts[name] = os.path.join(scratch, f"{name}-mnt")
            os.makedirs(mnts[name])
            shoal("--home", homes[name], "mount", "-o", "ro", *cluster.cluster_args(),
                  *option_args({**options, "read_type": "NO_CACHE",
                                "cluster.short_circuit": flag}), URI, mnts[name])  # fmt: skip
        _epoch(mnts["off"], rels, size, readers)  # the worker's cache filled
        time.sleep(5)  # its blocks stored (in the background, after each reply)
        _epoch(mnts["on"], rels, size, readers)  # and located once
        figures: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(2):
            for name in ("on", "off"):
                figures[name].append(_epoch(mnts[name], rels, size, readers))
        shorts = {name: _short_reads(home) for name, home in homes.items()}
        return {"files": files, "size": size, "readers": readers, "files_per_s": figures,
                "short_circuit_reads": shorts}  # fmt: skip
    finally:
        for mnt in mnts.values():
            if os.path.ismount(mnt):
                shoal("umount", mnt)
        if worker is not None:
            worker.stop()
        etcd.stop()
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    result = run()
    for name, rates in result["files_per_s"].items():
        print(f"short-circuit {name}: " + ", ".join(f"{r:.0f}" for r in rates) + " files/s")
    on, off = (sum(result["files_per_s"][k]) for k in ("on", "off"))
    print(
        f"on/off: {on / off:.2f}x ({result['files']} files of {result['size']} B,"
        f" {result['readers']} readers; short-circuit reads {result['short_circuit_reads']})"
    )


if __name__ == "__main__":
    main()

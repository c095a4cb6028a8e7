"""Short-circuit reads in cluster mode, measured (docs/cluster.md): one `shoal worker` holding
a dataset in its cache, and two FUSE clients on its host that keep nothing themselves
(read_type NO_CACHE), one reading the worker's tier files directly (the default), one with
``cluster.short_circuit = false`` (over HTTP). Warm epochs alternate between them, twice each;
files/s of each, and the ratio on/off. Run: ``python -m cli.bench.shortcircuit``."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

from cli.bench.clusterprocs import BUCKET, URI, Cluster, Worker, make_home, option_args, shoal
from cli.bench.etcdserver import start_etcd
from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, start_s3_server

FILES, SIZE, READERS = 600, 110_000, 4


def _cold(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:  # the kernel's pages of an earlier epoch dropped: each read reaches the daemon
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return len(os.pread(fd, SIZE + 1, 0))
    finally:
        os.close(fd)


def _epoch(mnt: str, rels: list[str]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(READERS) as pool:
        assert sum(pool.map(_cold, [os.path.join(mnt, r) for r in rels])) == FILES * SIZE
    return FILES / (time.perf_counter() - start)


def main() -> None:
    scratch = tempfile.mkdtemp(prefix="shoal-bench-shortc-")
    server = start_s3_server()
    etcd = start_etcd(Path(scratch) / "etcd")
    worker: Worker | None = None
    mnts: dict[str, str] = {}
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        s3.create_bucket(Bucket=BUCKET)
        rels = [f"c{i % 10}/f{i:04d}.bin" for i in range(FILES)]
        for rel in rels:
            s3.put_object(Bucket=BUCKET, Key=f"ds/{rel}", Body=os.urandom(SIZE))
        secret, token = os.path.join(scratch, "s3.secret"), os.path.join(scratch, "token")
        for path, text in ((secret, SECRET_KEY), (token, "bench-" + os.urandom(8).hex())):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(text + "\n")
        options = {"endpoint": server.endpoint, "path_style": "true", "region": "us-east-1",
                   "access_key": ACCESS_KEY, "secret_key_file": secret}  # fmt: skip
        cluster = Cluster(etcd.cluster_url("shortc"), token, open(token).read().strip(), options)
        worker = Worker(cluster, os.path.join(scratch, "w1"), "w1", 1 << 30)
        for name, flag in (("on", "true"), ("off", "false")):
            home = make_home(os.path.join(scratch, f"{name}-home"), 64 << 20)
            mnts[name] = os.path.join(scratch, f"{name}-mnt")
            os.makedirs(mnts[name])
            shoal("--home", home, "mount", "-o", "ro", *cluster.cluster_args(),
                  *option_args({**options, "read_type": "NO_CACHE",
                                "cluster.short_circuit": flag}), URI, mnts[name])  # fmt: skip
        _epoch(mnts["off"], rels)  # the worker's cache filled
        time.sleep(5)  # its blocks stored (in the background, after each reply)
        _epoch(mnts["on"], rels)  # and located once: checked by the worker on first use
        figures: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(2):
            for name in ("on", "off"):
                figures[name].append(_epoch(mnts[name], rels))
        for name, rates in figures.items():
            print(f"short-circuit {name}: " + ", ".join(f"{r:.0f}" for r in rates) + " files/s")
        on, off = sum(figures["on"]), sum(figures["off"])
        print(f"on/off: {on / off:.2f}x ({FILES} files of {SIZE} B, {READERS} readers)")
    finally:
        for mnt in mnts.values():
            if os.path.ismount(mnt):
                shoal("umount", mnt)
        if worker is not None:
            worker.stop()
        etcd.stop()
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

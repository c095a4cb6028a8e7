"""The workloads of `shoal bench write` (cli/bench/write.py), each timed the same way wherever
it runs: onto the local disk, through a mount, or (the S3 baseline) by boto3 itself.

- a tar archive of many small files in a few directories, extracted by `tar x` and ended with
  `sync`, as a user untarring a dataset would;
- one large file written sequentially in 1 MiB writes and fsynced before close, as `dd
  conv=fsync` or a training checkpoint would;
- the same bytes sent by boto3's own multipart upload (its default transfer configuration).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
from typing import Any

MiB = 1 << 20
SMALL_SIZE = 2000  # bytes per file of the tar archive
DIRECTORIES = 20


def make_tar(scratch: str, files: int) -> str:
    """A tar archive of ``files`` files of SMALL_SIZE random bytes in DIRECTORIES directories
    (owned by the caller, mode 0644): its path."""
    src = os.path.join(scratch, "tar-src")
    for i in range(files):
        folder = os.path.join(src, f"d{i % DIRECTORIES:02d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"f{i:06d}.bin"), "wb") as f:
            f.write(os.urandom(SMALL_SIZE))
    archive = os.path.join(scratch, "small.tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname="data")
    return archive


def untar(archive: str, dest: str) -> float:
    """Seconds for `tar x` of ``archive`` into ``dest`` and the `sync` after it."""
    os.makedirs(dest, exist_ok=True)
    start = time.perf_counter()
    subprocess.run(["tar", "xf", archive, "-C", dest], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def tar_figures(files: int, seconds: float) -> dict[str, float]:
    return {"seconds": seconds, "files_per_s": files / seconds}


def chunk() -> bytes:
    """The 1 MiB every sequential write repeats (random: nothing on the way may compress it)."""
    return os.urandom(MiB)


def write_sequential(path: str, mib: int, data: bytes) -> float:
    """Seconds to create ``path``, write ``mib`` MiB of ``data`` in 1 MiB writes, fsync it and
    close it (close too: a mount may finish the file's durability only there)."""
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(mib):
            os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def seq_figures(mib: int, seconds: float) -> dict[str, float]:
    return {"seconds": seconds, "mb_per_s": mib * MiB / seconds / 1e6}


def boto3_multipart(client: Any, bucket: str, key: str, source: str) -> float:
    """Seconds for boto3's managed multipart upload of the file ``source`` (its defaults:
    8 MiB parts, 10 threads)."""
    start = time.perf_counter()
    client.upload_file(source, bucket, key)
    return time.perf_counter() - start


def files_below(root: str) -> int:
    """Regular files below ``root`` (0 if it does not exist)."""
    return sum(len(fs) for _, _, fs in os.walk(root))


def local_figures(path: str, mib: int, data: bytes) -> dict[str, float]:
    """The sequential write onto the local disk, its file removed after."""
    try:
        return seq_figures(mib, write_sequential(path, mib, data))
    finally:
        os.unlink(path)

"""`shoal bench read`'s fsspec client figures: the mount's small files read through
``fsspec.filesystem("shoal", mountpoint=MNT)`` (docs/client.md) rather than through FUSE.

Reader processes are started before the clock, each with its own client, and read the files
with the same loop as every other reader of the benchmark (whole files, 1 MiB reads), twice:

- ``fsspec_first_small``: the clients' first pass, with the blocks in Shoal's cache: each
  open asks the daemon once (it hands over the block files' descriptors);
- ``fsspec_warm_small``: their second pass (a DataLoader's persistent workers): nothing has
  changed since (the daemon's epoch has not moved), so each open is a lookup in the client
  and each read a pread, and the daemon hears of none of it.

``fsspec_small_vs_local`` is the warm pass against the local directory read from the page
cache in the same run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

MiB = 1 << 20


def _read_files(fs: Any, paths: list[str]) -> int:
    n = 0
    for path in paths:
        with fs.open(path, "rb") as f:
            while chunk := f.read(MiB):
                n += len(chunk)
    return n


def _reader(mountpoint: str, share: list[str], pipe: Connection) -> None:
    """One reader process: its own client, its own share of the files in every pass (a
    process pool could hand a warm pass files this process's client never opened)."""
    from cli.client.filesystem import ShoalFileSystem

    fs = ShoalFileSystem(mountpoint=mountpoint)
    pipe.send(0)
    while pipe.recv() == "go":
        pipe.send(_read_files(fs, share))


def _figures(files: int, seconds: float, total: int) -> dict[str, float]:
    return {"files_per_s": files / seconds, "mib_per_s": total / seconds / MiB}


def measure(mountpoint: str, paths: list[str], readers: int) -> dict[str, dict[str, float]]:
    """The first and the warm pass of ``readers`` client processes over ``paths`` (in the
    mount, its blocks cached)."""
    context = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    out = {}
    try:
        for i in range(readers):
            mine, theirs = context.Pipe()
            proc = context.Process(target=_reader, args=(mountpoint, paths[i::readers], theirs))
            proc.start()
            pipes.append(mine)
            procs.append(proc)
        for pipe in pipes:
            pipe.recv()  # every reader up before the clock starts
        for label in ("fsspec_first_small", "fsspec_warm_small"):
            start = time.perf_counter()
            for pipe in pipes:
                pipe.send("go")
            total = sum(pipe.recv() for pipe in pipes)
            out[label] = _figures(len(paths), time.perf_counter() - start, total)
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):  # a reader that died has said why already
                pipe.send("stop")
        for proc in procs:
            proc.join()
    return out


def ratios(result: dict[str, Any]) -> dict[str, float]:
    if "fsspec_warm_small" not in result:
        return {}
    warm, local = result["fsspec_warm_small"], result["local_small"]
    return {"fsspec_small_vs_local": float(warm["files_per_s"] / local["files_per_s"])}

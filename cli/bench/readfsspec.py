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
cache at the start of the run. On a machine others share, minutes apart is long: the same
processes also read the local copies right beside each of three warm passes, and
``fsspec_small_vs_local_beside`` is the median of those pairs' ratios
(``fsspec_warm_small`` is the median warm pass, ``local_small_beside`` the median local one).
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


def _read_local(paths: list[str]) -> int:
    n = 0
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(MiB):
                n += len(chunk)
    return n


def _reader(mountpoint: str, share: list[str], local: list[str], pipe: Connection) -> None:
    """One reader process: its own client, its own share of the files in every pass (a
    process pool could hand a warm pass files this process's client never opened)."""
    from cli.client.filesystem import ShoalFileSystem

    fs = ShoalFileSystem(mountpoint=mountpoint)
    pipe.send(0)
    while (what := pipe.recv()) != "stop":
        pipe.send(_read_files(fs, share) if what == "fsspec" else _read_local(local))


def _figures(files: int, seconds: float, total: int) -> dict[str, float]:
    return {"files_per_s": files / seconds, "mib_per_s": total / seconds / MiB}


def measure(mountpoint: str, paths: list[str], local: list[str], readers: int) -> dict[str, Any]:
    """The first and the warm passes of ``readers`` client processes over ``paths`` (in the
    mount, its blocks cached), and the same processes' local passes over ``local`` (the same
    files in a local directory) beside the warm ones."""
    context = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    try:
        for i in range(readers):
            mine, theirs = context.Pipe()
            args = (mountpoint, paths[i::readers], local[i::readers], theirs)
            proc = context.Process(target=_reader, args=args)
            proc.start()
            pipes.append(mine)
            procs.append(proc)
        for pipe in pipes:
            pipe.recv()  # every reader up before the clock starts

        def one(what: str) -> dict[str, float]:
            start = time.perf_counter()
            for pipe in pipes:
                pipe.send(what)
            total = sum(pipe.recv() for pipe in pipes)
            return _figures(len(paths), time.perf_counter() - start, total)

        out: dict[str, Any] = {"fsspec_first_small": one("fsspec")}
        pairs = [(one("local"), one("fsspec")) for _ in range(3)]
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):  # a reader that died has said why already
                pipe.send("stop")
        for proc in procs:
            proc.join()
    by_warm = sorted(pairs, key=lambda pair: pair[1]["files_per_s"])
    by_local = sorted(pairs, key=lambda pair: pair[0]["files_per_s"])
    beside = sorted(w["files_per_s"] / loc["files_per_s"] for loc, w in pairs)
    out["fsspec_warm_small"] = by_warm[1][1]
    out["local_small_beside"] = by_local[1][0]
    out["fsspec_beside_ratios"] = beside
    return out


def ratios(result: dict[str, Any]) -> dict[str, float]:
    if "fsspec_warm_small" not in result:
        return {}
    warm, local = result["fsspec_warm_small"], result["local_small"]
    return {
        "fsspec_small_vs_local": float(warm["files_per_s"] / local["files_per_s"]),
        "fsspec_small_vs_local_beside": float(sorted(result["fsspec_beside_ratios"])[1]),
    }

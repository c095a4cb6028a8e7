"""`shoal bench write`'s ceiling: a pyfuse3 file system that accepts what `tar x` and a large
sequential write do (mkdir, create, write, setattr, flush, fsync, release; lookup, getattr and
readdir for checking; unlink and rmdir for cleaning up), keeps files in memory, and does
nothing else: no journal, no tier, no UFS. Whatever a workload costs through it is what pyfuse3
and the kernel's round trips cost; no pyfuse3 file system can be faster.

It speaks to the kernel as Shoal's mount does: default_permissions, noatime, no writeback
cache, Shoal's default 300 s entry and attribute timeouts, FLUSH answered, extended attributes
answered (ENODATA) rather than turned off (cli/bench/memfs.py is the file system itself,
cli/bench/ceiling.py its read-only sibling for `shoal bench read`). It counts the requests it
gets, by kind, and writes them as JSON when it is unmounted: the requests per file the kernel
sends for `tar x` explain the ceiling.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from cli.bench.ceiling import served


def serve(mountpoint: str, counts: str, xattrs: bool = True, s3: list[str] | None = None) -> None:
    """Mounts the in-memory file system on ``mountpoint`` until it is unmounted, then writes the
    requests it got ({kind: number}) and the regular files and bytes it holds as JSON to ``counts``:
    counted there, not by walking the mount, so that checking adds no request. With ``s3``
    (endpoint, bucket, key prefix) its files are streamed into S3 instead (cli/bench/s3memfs.py)."""
    import pyfuse3
    import trio

    from cli.bench.memfs import MemoryFS

    if s3 is not None:
        from cli.bench.s3memfs import S3StreamFS

        fs: MemoryFS = S3StreamFS(*s3)
    else:
        fs = MemoryFS(xattrs)
    options = set(pyfuse3.default_options)  # default_permissions, as Shoal's
    options |= {"fsname=shoal-bench-write-ceiling", "noatime"}
    pyfuse3.init(fs, mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close()
        with open(counts, "w") as f:
            held = {"files": fs.regular_files(), "bytes": fs.bytes_held()}
            json.dump({"requests": dict(fs.requests), **held}, f)


class Ceiling:
    """A mounted in-memory file system: its mount point, the pid serving it, and (once it is
    unmounted) the requests it got and the regular files and bytes it held."""

    def __init__(self, mountpoint: str, pid: int) -> None:
        self.mountpoint = mountpoint
        self.pid = pid
        self.requests: dict[str, int] = {}
        self.files = 0
        self.bytes = 0


@contextmanager
def bare_write_mount(
    scratch: str, xattrs: bool = True, s3: tuple[str, str, str] | None = None
) -> Iterator[Ceiling]:
    """The in-memory file system mounted in ``scratch`` while inside, served by a child process
    in a session of its own (as `shoal mount` starts its daemon: a scheduling group of its
    own, placed as Shoal's is). With ``xattrs`` off it answers extended attributes with ENOSYS,
    as Shoal with fuse.xattrs = false: the kernel stops asking for them. With ``s3`` (endpoint,
    bucket, key prefix) it streams what is written at its root into S3 objects under the prefix
    as boto3's managed transfer would (cli/bench/s3memfs.py): the S3 write ceiling."""
    mountpoint = os.path.join(scratch, "write-ceiling-mnt")
    counts = os.path.join(scratch, "write-ceiling-requests.json")
    os.makedirs(mountpoint)
    args = [sys.executable, "-m", "cli.bench.writeceiling", mountpoint, counts]
    args += [] if xattrs else ["--no-xattrs"]
    args += ["--s3", *s3] if s3 is not None else []
    with served(args, mountpoint, "write file system") as pid:
        ceiling = Ceiling(mountpoint, pid)
        yield ceiling
    with open(counts) as f:
        held = json.load(f)
    ceiling.requests, ceiling.files, ceiling.bytes = held["requests"], held["files"], held["bytes"]
    os.unlink(counts)


if __name__ == "__main__":
    rest = sys.argv[3:]
    s3 = rest[rest.index("--s3") + 1 : rest.index("--s3") + 4] if "--s3" in rest else None
    serve(sys.argv[1], sys.argv[2], xattrs="--no-xattrs" not in rest, s3=s3)

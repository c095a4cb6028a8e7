"""`shoal bench read`'s cold-S3 ceiling: the least any pyfuse3 mount can do for a file it has
never seen, measured beside Shoal's cold epoch in the same run (``ceiling_cold_s3_small``).

A bare pyfuse3 file system, in a child process, serving the benchmark's bucket prefix read-only
through the same latency proxy as Shoal: no cache, no journal, no tiers. LOOKUP is answered
from the parent directory's listing (list_objects_v2 once per directory, on its first LOOKUP,
as Shoal loads a directory); GETATTR from what the listing said; OPEN does nothing; the first
READ of an open file GETs the object (whole up to ``WHOLE`` bytes, kept for that handle's later
READs and dropped at RELEASE; a range per READ beyond). Every boto3 call runs in a trio worker
thread, as many at once as there are readers; the client is configured as Shoal's S3
connector's where it matters (connection pool, retries, path-style keys, its fast timestamp
parser). It is mounted anew just before its epoch, so the kernel holds nothing of it, and read
by the same reader code as every other figure.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

from cli.bench.ceiling import cpu_seconds, served
from cli.bench.readers import figures, timed

BUCKET, PREFIX = "bench", "ds/"  # where read.py uploads the dataset
WHOLE = 8 << 20  # files up to this size are fetched by one GET at their first READ


def _client(endpoint: str) -> Any:
    """The client Shoal's own S3 connector makes (ufs/s3.py: its pool, retries, timeouts and
    timestamp parser), for the test server's bucket."""
    from cli.bench.s3server import ACCESS_KEY, SECRET_KEY
    from ufs.s3 import S3UnderFS
    from ufs.s3options import S3Options

    options = S3Options(endpoint=endpoint, region="us-east-1", path_style=True)
    credentials = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
    return S3UnderFS(BUCKET, options=options, credentials=credentials).client


def _listing(client: Any, prefix: str) -> list[tuple[bytes, str, int]]:
    """(name, key or directory prefix, size; -1 for a directory) of each entry under
    ``prefix``, every page of the listing."""
    entries = []
    pages = client.get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=BUCKET, Prefix=prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            sub = common["Prefix"]
            entries.append((sub[len(prefix) : -1].encode(), sub, -1))
        for obj in page.get("Contents", []):
            if obj["Key"] != prefix:  # a directory marker is not an entry of itself
                entries.append((obj["Key"][len(prefix) :].encode(), obj["Key"], obj["Size"]))
    return entries


def _attributes(ino: int, size: int) -> Any:
    import pyfuse3

    a = pyfuse3.EntryAttributes()
    a.st_ino = ino
    a.entry_timeout = a.attr_timeout = 300  # read-only: nothing it says changes
    a.st_mode = stat.S_IFDIR | 0o755 if size < 0 else stat.S_IFREG | 0o444
    a.st_size = max(size, 0)
    a.st_blksize = 1 << 20
    return a


class _Tree:
    """The names listed so far: inode (the root is 1) to key and size, attributes, and the
    entries of each directory listed."""

    def __init__(self) -> None:
        self.keys: dict[int, tuple[str, int]] = {1: (PREFIX, -1)}  # inode: key, size (-1: dir)
        self.attrs: dict[int, Any] = {1: _attributes(1, -1)}
        self.children: dict[int, dict[bytes, int]] = {}

    def adopt(self, parent: int, listed: list[tuple[bytes, str, int]]) -> dict[bytes, int]:
        names = self.children[parent] = {}
        for name, key, size in listed:
            ino = names[name] = len(self.keys) + 1
            self.keys[ino] = (key, size)
            self.attrs[ino] = _attributes(ino, size)
        return names

    def preload(self, client: Any, parent: int = 1) -> None:
        """Every directory under ``parent`` listed now, before the mount is up."""
        for ino in self.adopt(parent, _listing(client, self.keys[parent][0])).values():
            if self.keys[ino][1] < 0:
                self.preload(client, ino)


def _file_system(client: Any, threads: int, tree: _Tree) -> Any:
    """The pyfuse3 Operations described above over ``tree``, ``threads`` boto3 calls at once."""
    import pyfuse3
    import trio

    limiter = trio.CapacityLimiter(threads)
    keys, attrs, children = tree.keys, tree.attrs, tree.children

    class S3Ceiling(pyfuse3.Operations):
        def __init__(self) -> None:
            super().__init__()
            self.loading: dict[int, Any] = {}  # directory inode: trio.Event of its listing
            self.handles: dict[int, int] = {}  # fh: inode
            self.bodies: dict[int, bytes] = {}  # fh: the object, once its first READ got it
            self.next_fh = 1

        async def _children(self, parent: int) -> dict[bytes, int]:
            while parent not in children:
                loading = self.loading.get(parent)
                if loading is not None:  # one listing per directory, however many LOOKUPs
                    await loading.wait()
                    continue
                loading = self.loading[parent] = trio.Event()
                try:
                    listed = await trio.to_thread.run_sync(
                        _listing, client, keys[parent][0], limiter=limiter
                    )
                    tree.adopt(parent, listed)
                finally:
                    del self.loading[parent]
                    loading.set()
            return children[parent]

        async def lookup(self, parent: int, name: bytes, ctx: object = None) -> Any:
            ino = (await self._children(parent)).get(name)
            if ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return attrs[ino]

        async def getattr(self, inode: int, ctx: object = None) -> Any:
            return attrs[inode]

        async def open(self, inode: int, flags: int, ctx: object) -> Any:
            fh, self.next_fh = self.next_fh, self.next_fh + 1
            self.handles[fh] = inode
            return pyfuse3.FileInfo(fh=fh, keep_cache=True)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            key, length = keys[self.handles[fh]]
            if length > WHOLE:
                span = f"bytes={off}-{off + size - 1}"
                return await trio.to_thread.run_sync(_get, client, key, span, limiter=limiter)
            body = self.bodies.get(fh)
            if body is None:
                body = await trio.to_thread.run_sync(_get, client, key, None, limiter=limiter)
                self.bodies[fh] = body
            return body[off : off + size]

        async def flush(self, fh: int) -> None:
            raise pyfuse3.FUSEError(errno.ENOSYS)  # off for the connection, as Shoal's ro mount

        async def release(self, fh: int) -> None:
            del self.handles[fh]
            self.bodies.pop(fh, None)

    return S3Ceiling()


def serve(mountpoint: str, endpoint: str, threads: int, listed: bool = False) -> None:
    """The file system described above, mounted at ``mountpoint`` until unmounted; ``listed``:
    every directory listed before the mount is up, so that no LOOKUP waits for a listing."""
    import pyfuse3
    import trio

    client, tree = _client(endpoint), _Tree()
    if listed:
        tree.preload(client)
    operations = _file_system(client, threads, tree)
    options = set(pyfuse3.default_options)
    options.add("ro")
    options.add("fsname=shoal-bench-s3ceiling")
    pyfuse3.init(operations, mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close()


def _get(client: Any, key: str, span: str | None) -> bytes:
    extra = {"Range": span} if span else {}
    body: bytes = client.get_object(Bucket=BUCKET, Key=key, **extra)["Body"].read()
    return body


def _pass(
    scratch: str, src: str, small: list[str], endpoint: str, readers: int, *flags: str
) -> dict[str, float]:
    """Figures of one cold epoch over ``small`` through a new mount of the ceiling, unmounted
    afterwards whatever happened (a reader failing too)."""
    mountpoint = os.path.join(scratch, "s3ceiling-mnt")
    os.makedirs(mountpoint)
    args = [sys.executable, "-m", "cli.bench.s3ceiling", mountpoint, endpoint, str(readers)]
    with served([*args, *flags], mountpoint, "S3 file system") as server:
        paths = [os.path.join(mountpoint, os.path.relpath(p, src)) for p in small]
        cpu = cpu_seconds(server)
        seconds, total = timed(readers, paths)
        cpu_us = (cpu_seconds(server) - cpu) / len(paths) * 1e6
    return figures(len(paths), seconds, total) | {"daemon_cpu_us_per_file": cpu_us}


def epoch(
    scratch: str, src: str, small: list[str], endpoint: str, readers: int
) -> dict[str, dict[str, float]]:
    """The ceiling's cold epochs over ``small`` (files of the local copy ``src``, uploaded
    under the bucket's prefix), each on a mount of its own in ``scratch`` served through
    ``endpoint``: ``ceiling_cold_s3_small`` (directories listed at their first LOOKUP, as
    Shoal lists them) and ``ceiling_cold_s3_listed_small`` (all listed before the mount: what
    is left is the GETs and the kernel's requests, the names known as direct GETs know them).
    """
    listed = _pass(scratch, src, small, endpoint, readers, "--listed")
    return {
        "ceiling_cold_s3_listed_small": listed,
        "ceiling_cold_s3_small": _pass(scratch, src, small, endpoint, readers),
    }


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """The ceiling against direct GETs at the same parallelism, and Shoal's cold epoch against
    the ceiling: in MiB/s, as ``cold_small_vs_boto3``."""
    ceiling = result["ceiling_cold_s3_small"]["mib_per_s"]
    listed = result["ceiling_cold_s3_listed_small"]["mib_per_s"]
    boto3 = result["boto3_small"]["mib_per_s"]
    return {
        "cold_s3_ceiling_vs_boto3": float(ceiling / boto3),
        "cold_small_vs_s3_ceiling": float(result["mount_cold_small"]["mib_per_s"] / ceiling),
        "cold_s3_listed_ceiling_vs_boto3": float(listed / boto3),
    }


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:5] == ["--listed"])

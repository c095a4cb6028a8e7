"""The ceiling of any pyfuse3 file system on this machine for `shoal bench read`'s warm small
files: 3,000 files of 110,000 bytes in 30 directories, read whole by 4 processes, served by a
pyfuse3 file system that does nothing else (constant bytes from memory; keep_cache, 300 s entry
and attribute timeouts, FLUSH disabled, read-only). Shoal's warm figure can only be below it.

    .venv/bin/python scripts/fuse_ceiling.py      # as root, /dev/fuse available
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool

DIRS, PER, SIZE, READERS = 30, 100, 110_000, 4


def serve(mountpoint: str) -> None:
    import pyfuse3
    import trio

    data = b"x" * SIZE

    def attrs(inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.entry_timeout = a.attr_timeout = 300
        if inode <= DIRS + 1:
            a.st_mode = stat.S_IFDIR | 0o755
        else:
            a.st_mode = stat.S_IFREG | 0o644
            a.st_size = SIZE
        return a

    class Ops(pyfuse3.Operations):  # type: ignore[misc]
        async def getattr(self, inode: int, ctx: object = None) -> pyfuse3.EntryAttributes:
            return attrs(inode)

        async def lookup(self, parent: int, name: bytes, ctx: object = None) -> object:
            n = name.decode()
            if parent == 1 and n.startswith("d"):
                return attrs(2 + int(n[1:]))
            if 2 <= parent <= DIRS + 1 and n.startswith("f"):
                return attrs(1000 + (parent - 2) * PER + int(n[1:]))
            raise pyfuse3.FUSEError(errno.ENOENT)

        async def open(self, inode: int, flags: int, ctx: object) -> pyfuse3.FileInfo:
            return pyfuse3.FileInfo(fh=inode, keep_cache=True)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            return data[off : off + size]

        async def flush(self, fh: int) -> None:
            raise pyfuse3.FUSEError(errno.ENOSYS)

        async def release(self, fh: int) -> None:
            pass

    options = set(pyfuse3.default_options)
    options.add("ro")
    pyfuse3.init(Ops(), mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close()


def _read(paths: list[str]) -> int:
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass
    return len(paths)


def main() -> None:
    mountpoint = tempfile.mkdtemp(prefix="fuse-ceiling-")
    server = subprocess.Popen([sys.executable, __file__, "--serve", mountpoint])
    try:
        deadline = time.monotonic() + 10
        while not os.path.ismount(mountpoint):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the minimal file system did not mount")
            time.sleep(0.05)
        paths = [f"{mountpoint}/d{d}/f{i}" for d in range(DIRS) for i in range(PER)]
        with Pool(READERS) as pool:
            for label in ("cold (first pass)", "warm", "warm", "warm"):
                start = time.perf_counter()
                n = sum(pool.map(_read, [paths[i::READERS] for i in range(READERS)]))
                print(f"{label:<18} {n / (time.perf_counter() - start):8,.0f} files/s")
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], check=False)
        server.wait(timeout=10)
        os.rmdir(mountpoint)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
    else:
        main()

"""`shoal bench read`'s local-UFS figures: Shoal's miss path over a local directory, against the
bare pyfuse3 file system's first pass, both in the same run.

- ``ceiling_first_small``: a pyfuse3 file system that does nothing but serve bytes from memory
  (the same shape as scripts/fuse_ceiling.py: keep_cache, long timeouts, FLUSH off, read-only),
  holding as many files of the same size as the dataset, read once by the same readers. Every
  read reaches it: what any pyfuse3 mount costs per file. (Kept here, not imported from
  scripts/: a `shoal` command must not depend on the source tree's scripts.)
- ``mount_local_cold_small``: `shoal mount` of the dataset directory itself (a local UFS) with
  a fresh home, read once: every block a miss, read from the UFS and stored in the background.
  The dataset's page cache is warm (it was just written and read by the local figure), the same
  condition as the bare file system, which serves from memory: the figure is Shoal's cost, not
  the disk's.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from engine.config import default_tiers

MOUNT_WAIT_S = 20.0


def serve_ceiling(mountpoint: str, files: int, size: int, per_dir: int) -> None:
    """Serves ``files`` files of ``size`` bytes as d<i>/f<j> (``per_dir`` per directory) from
    memory until unmounted. Runs in its own process (``python -m cli.bench.readlocal``)."""
    import pyfuse3
    import trio

    data = b"x" * size
    dirs = (files + per_dir - 1) // per_dir
    first_file = dirs + 2  # inode 1 is the root, 2.. the directories

    def attrs(inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        a.entry_timeout = a.attr_timeout = 300
        if inode < first_file:
            a.st_mode = stat.S_IFDIR | 0o755
        else:
            a.st_mode = stat.S_IFREG | 0o644
            a.st_size = size
        return a

    class Ops(pyfuse3.Operations):
        async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
            return attrs(inode)

        async def lookup(
            self, parent: int, name: bytes, ctx: pyfuse3.RequestContext
        ) -> pyfuse3.EntryAttributes:
            n = name.decode()
            if parent == 1 and n.startswith("d") and int(n[1:]) < dirs:
                return attrs(2 + int(n[1:]))
            if 2 <= parent < first_file and n.startswith("f"):
                index = (parent - 2) * per_dir + int(n[1:])
                if index < files:
                    return attrs(first_file + index)
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


def _wait_mounted(mountpoint: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + MOUNT_WAIT_S
    while not os.path.ismount(mountpoint):
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the bare pyfuse3 file system did not mount")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and its child processes (the
    daemon's journal writer): what serving costs, a figure a busy machine disturbs less than
    throughput."""
    pids, total = [pid], 0.0
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    pids += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


def _with_cpu(
    pid: int, timed: Callable[[list[str]], tuple[float, int]], paths: list[str]
) -> tuple[float, int, float]:
    before = cpu_seconds(pid)
    seconds, total = timed(paths)
    return seconds, total, cpu_seconds(pid) - before


def ceiling_first(
    files: int,
    size: int,
    per_dir: int,
    timed: Callable[[list[str]], tuple[float, int]],
    workdir: str | None = None,
) -> tuple[float, int, float]:
    """Seconds, bytes and the server's CPU seconds of one ``timed`` pass over the bare pyfuse3
    file system's files."""
    mountpoint = tempfile.mkdtemp(prefix="shoal-bench-ceiling-", dir=workdir)
    command = [sys.executable, "-m", "cli.bench.readlocal", mountpoint, str(files), str(size)]
    server = subprocess.Popen([*command, str(per_dir)])
    try:
        _wait_mounted(mountpoint, server)
        paths = [f"{mountpoint}/d{i // per_dir}/f{i % per_dir}" for i in range(files)]
        return _with_cpu(server.pid, timed, paths)
    finally:
        subprocess.run(["fusermount3", "-u", mountpoint], check=False, capture_output=True)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        os.rmdir(mountpoint)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + MOUNT_WAIT_S
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def run_local(
    src: str,
    scratch: str,
    small: list[str],
    size: int,
    per_dir: int,
    timed: Callable[[list[str]], tuple[float, int]],
    shoal: Callable[..., None],
) -> dict[str, tuple[float, int, float]]:
    """The local-UFS figures (see the module's docstring), measured one after the other:
    ``{"ceiling_first_small": ..., "mount_local_cold_small": ...}`` as (seconds, bytes, CPU
    seconds of the file system's processes)."""
    out: dict[str, tuple[float, int, float]] = {}
    out["ceiling_first_small"] = ceiling_first(len(small), size, per_dir, timed, scratch)
    home, mnt = os.path.join(scratch, "home-local"), os.path.join(scratch, "mnt-local")
    os.makedirs(mnt)
    daemon = 0
    try:
        shoal("mount", "--home", home, src, mnt, "-o", "ro")
        try:
            in_mount = [os.path.join(mnt, os.path.relpath(p, src)) for p in small]
            with open(os.path.join(home, "daemon.pid")) as f:
                daemon = int(f.read().split()[0])
            out["mount_local_cold_small"] = _with_cpu(daemon, timed, in_mount)
        finally:
            shoal("umount", mnt)
            # The daemon still stores what it holds as it stops: its tiers are removed after.
            _wait_gone(daemon)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        os.rmdir(mnt)
        # Its MEM tier is on /dev/shm, outside the scratch directory: RAM until removed.
        for tier in default_tiers(home):
            for path in tier.paths:
                shutil.rmtree(path, ignore_errors=True)
    return out


if __name__ == "__main__":
    serve_ceiling(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))

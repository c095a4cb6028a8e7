"""`shoal bench read --mount DIR` and `shoal bench read UFS_URI`: the benchmark's reader
workload (cli/bench/readers.py) pointed at the user's own mount or store, as `juicefs bench`
can be.

- ``--mount DIR``: any directory (a Shoal mount, another FUSE mount, a local disk). The
  benchmark writes its own sample set (the built-in workload's class folders of 110 KB files)
  below ``DIR/shoal-bench-XXXX`` and removes that directory afterwards, or, with ``--dataset
  SUBDIR``, only reads the files already below ``DIR/SUBDIR``. Passes: ``first``, ``warm``
  and, with ``--drop-cache``, ``uncached``: read after ``posix_fadvise(DONTNEED)`` on each file,
  which drops that file's pages from the kernel's page cache (FUSE files too) and nobody
  else's, unlike ``/proc/sys/vm/drop_caches``. With ``--drop-cache`` the first pass follows
  such a drop as well, so that files just written are not read back from the page cache.
- ``UFS_URI`` (``s3://BUCKET[/PREFIX]``, ``file:///PATH``): the files below it (or below its
  ``--dataset SUBDIR``) read through a read-only `shoal mount` of it in a temporary home, with
  the mount options and secret sources of `shoal mount` (secrets go to the daemon through its
  pipe, never an argv): ``mount_cold``, ``mount_warm``, ``mount_uncached`` (``--drop-cache``:
  Shoal's tiers without the page cache); for S3 also ``boto3``, direct GETs of the same
  objects by as many threads as there are readers, and the ratio ``cold_vs_boto3``. The
  mount, its home and its MEM tier are removed afterwards; nothing is written to the store.

Files are taken in path order, at most ``--files N`` of them; each figure is files/s and MiB/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cli import secret_sources
from cli.bench.readers import MiB, figures, listing, make_dataset, timed
from cli.common import UsageError
from cli.daemon_cmds import split_options, start_mount
from engine.config import default_tiers
from engine.credentials import resolve, split_secrets
from engine.errors import InvalidArgument, NotADirectory, NotFound, PermissionDenied, ShoalError
from engine.mounts import ENGINE_OPTIONS, ufs_errors
from ufs.base import UnderFS, join
from ufs.uri import open_ufs

DEFAULT_FILES = 3000
Reader = Callable[[list[str]], tuple[float, int]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mount", metavar="DIR",
        help="read in DIR (your own mount, or any directory) instead of the built-in workload",
    )  # fmt: skip
    p.add_argument(
        "--dataset", metavar="SUBDIR",
        help="with --mount or a UFS_URI: read the existing files below SUBDIR (nothing written)",
    )  # fmt: skip
    p.add_argument(
        "--drop-cache", action="store_true",
        help="with --mount or a UFS_URI: a pass after posix_fadvise(DONTNEED) on each file",
    )  # fmt: skip
    p.add_argument(
        "--files", type=int, default=DEFAULT_FILES, metavar="N",
        help=f"with --dataset or a UFS_URI: read at most N files (default {DEFAULT_FILES:,})",
    )  # fmt: skip
    p.add_argument(
        "-o", dest="option", action="append", default=[], metavar="KEY=VALUE",
        help="with a UFS_URI: a `shoal mount` option (endpoint=..., region=..., profile=...)",
    )  # fmt: skip
    secret_sources.add_arguments(p)


def chosen(args: argparse.Namespace) -> bool:
    """Whether the command asks for this module's workload rather than the built-in one; the
    options that only this one takes are refused without it, and the built-in one's with it."""
    uri = args.dir is not None and "://" in args.dir
    if args.mount and uri:
        raise UsageError("give --mount DIR or a UFS_URI, not both")
    if not (args.mount or uri):
        only_here = {
            "--dataset": args.dataset, "--drop-cache": args.drop_cache, "-o": args.option,
            "--secret-key-stdin": args.secret_key_stdin,
        }  # fmt: skip
        for name, given in only_here.items():
            if given:
                raise UsageError(f"{name} goes with --mount DIR or a UFS_URI")
        return False
    if args.mount and args.dir is not None:
        raise UsageError(f"--mount DIR reads in DIR: {args.dir!r} has no place beside it")
    if args.mount and (args.option or args.secret_key_stdin):
        raise UsageError("mount options (-o, --secret-key-stdin) go with a UFS_URI, not --mount")
    if args.chart:
        raise UsageError("--chart draws the built-in workload; here use --json")
    if args.files < 1:
        raise UsageError("--files needs at least 1")
    return True


def run_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.mount:
        return run_dir(
            args.mount, args.dataset, args.readers, args.classes, args.per_class,
            args.drop_cache, args.files,
        )  # fmt: skip
    split = split_options(args.option)
    overrides, ufs_options, _readonly, _nonempty = split
    ufs_options = secret_sources.gather(
        ufs_options, stdin_key=args.secret_key_stdin, use_environment=True
    )
    return run_uri(
        args.dir, (overrides, ufs_options, True, False), args.dataset, args.readers,
        args.drop_cache, args.files,
    )  # fmt: skip


# -- the passes ------------------------------------------------------------------------------


def drop_cached(paths: list[str]) -> None:
    """Each file's pages out of the kernel's page cache (clean pages: see ``_write_samples``)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _passes(
    result: dict[str, Any], prefix: str, names: tuple[str, str, str], paths: list[str],
    read: Reader, drop_cache: bool,
) -> None:  # fmt: skip
    """The first pass (after a drop, with ``drop_cache``), the warm one, and with
    ``drop_cache`` one more after a drop, as ``prefix + name`` figures."""
    first, warm, uncached = names
    for name, drop in ((first, drop_cache), (warm, False), (uncached, drop_cache)):
        if name == uncached and not drop_cache:
            return
        if drop:
            drop_cached(paths)
        seconds, total = read(paths)
        result[prefix + name] = figures(len(paths), seconds, total) | {"seconds": seconds}


# -- --mount DIR -----------------------------------------------------------------------------


def run_dir(
    target: str, dataset: str | None, readers: int, classes: int, per_class: int,
    drop_cache: bool, limit: int,
) -> dict[str, Any]:  # fmt: skip
    target = os.path.abspath(target)
    _check_directory(target)
    made: str | None = None
    if dataset is None:
        made = _bench_dir(target)
    try:
        if made is not None:
            paths = _write_samples(made, classes, per_class)
        else:
            paths = _existing(os.path.join(target, dataset or ""), limit)
        result = _describe(target, made, paths, readers, drop_cache)
        _passes(result, "", ("first", "warm", "uncached"), paths,
                lambda p: timed(readers, p), drop_cache)  # fmt: skip
        return result
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


def _check_directory(path: str) -> None:
    if not os.path.exists(path):
        raise NotFound(f"{path}: no such directory (--mount names the directory to read in)")
    if not os.path.isdir(path):
        raise NotADirectory(f"{path} is not a directory (--mount names the directory to read in)")


def _bench_dir(target: str) -> str:
    """A directory of the benchmark's own below ``target``, for its sample files."""
    refusal = (
        f"{target} is not writable by this user: the benchmark writes its sample files there"
        " (or give --dataset SUBDIR to read files that are already there)"
    )
    if not os.access(target, os.W_OK):  # also false on a read-only file system
        raise PermissionDenied(refusal)
    try:
        return tempfile.mkdtemp(prefix="shoal-bench-", dir=target)
    except OSError as exc:
        raise PermissionDenied(f"{refusal}: {exc.strerror}") from None


def _write_samples(root: str, classes: int, per_class: int) -> list[str]:
    """The built-in workload's small files below ``root``, each synced: a dirty page is not
    dropped by fadvise, and the uncached passes must read what the file system serves."""
    make_dataset(root, classes, per_class, 0, 0)
    paths = listing(root)[0]
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return paths


def _existing(root: str, limit: int) -> list[str]:
    if not os.path.isdir(root):
        raise NotFound(f"{root}: no such directory (--dataset names existing files to read)")
    paths = []
    for path in _walk(root):
        paths.append(path)
        if len(paths) == limit:
            break
    if not paths:
        raise InvalidArgument(f"{root}: no files to read below it")
    return paths


def _walk(root: str) -> Iterator[str]:
    """Regular files below ``root`` in path order, lazily: a huge tree is not listed whole."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                yield path


def _describe(
    target: str, made: str | None, paths: list[str], readers: int, drop_cache: bool
) -> dict[str, Any]:
    total = sum(os.path.getsize(p) for p in paths)
    return {
        "target": target, "readers": readers, "drop_cache": drop_cache,
        "dataset": {"files": len(paths), "mib": total / MiB, "written": made is not None,
                    "path": made or os.path.commonpath(paths)},
    }  # fmt: skip


# -- UFS_URI ---------------------------------------------------------------------------------


def run_uri(
    uri: str, split: tuple[dict[str, Any], dict[str, str], bool, bool], dataset: str | None,
    readers: int, drop_cache: bool, limit: int,
) -> dict[str, Any]:  # fmt: skip
    """The store's files read through a temporary mount of it (see the module's text)."""
    ufs_options = split[1]
    public, hidden = split_secrets(ufs_options)
    connector = {k: v for k, v in public.items() if k not in ENGINE_OPTIONS}
    if uri.startswith("s3://"):
        connector["posix_metadata"] = "false"  # the listing only needs names and sizes
    with ufs_errors():  # a missing bucket or a refused key: the connector's one line
        ufs = open_ufs(uri, connector, resolve(hidden) if hidden else None)
    scratch = tempfile.mkdtemp(prefix="shoal-bench-read-")
    home, mnt = os.path.join(scratch, "home"), os.path.join(scratch, "mnt")
    try:
        with ufs_errors():
            rels = _store_files(ufs, dataset or "", limit)
        result: dict[str, Any] = {"uri": uri, "readers": readers, "drop_cache": drop_cache}
        result["home"] = home  # temporary: removed, with its tiers, before this returns
        result["dataset"] = {"files": len(rels), "mib": sum(rels.values()) / MiB,
                             "path": dataset or "", "written": False}  # fmt: skip
        if uri.startswith("s3://"):
            seconds, total = _boto3_reads(ufs, list(rels), readers)
            result["boto3"] = figures(len(rels), seconds, total) | {"seconds": seconds}
        os.makedirs(mnt)
        if start_mount(home, uri, mnt, split) != 0:
            raise ShoalError(f"{uri} could not be mounted for the benchmark (see above)")
        try:
            paths = [os.path.join(mnt, rel) for rel in rels]
            _passes(result, "mount_", ("cold", "warm", "uncached"), paths,
                    lambda p: timed(readers, p), drop_cache)  # fmt: skip
        finally:
            _umount(mnt)
    finally:
        ufs.close()
        shutil.rmtree(scratch, ignore_errors=True)
        for tier in default_tiers(home):  # the MEM tier lives on /dev/shm, outside scratch
            for path in tier.paths:
                shutil.rmtree(path, ignore_errors=True)
    if "boto3" in result:
        cold, boto3 = result["mount_cold"]["files_per_s"], result["boto3"]["files_per_s"]
        result["ratios"] = {"cold_vs_boto3": cold / boto3}
    return result


def _store_files(ufs: UnderFS, top: str, limit: int) -> dict[str, int]:
    """Up to ``limit`` files below ``top`` in the store, in path order: path -> size."""
    found: dict[str, int] = {}
    pending = [top]
    while pending and len(found) < limit:
        folder = pending.pop()
        entries = sorted(ufs.list(folder), key=lambda s: s.path)
        for status in entries:
            if not status.is_dir and not status.special and len(found) < limit:
                found[status.path] = status.size
        # Depth first, in path order: the first subdirectory is popped next.
        pending += [s.path for s in reversed(entries) if s.is_dir]
    if not found:
        where = f"{ufs.uri.rstrip('/')}/{top}" if top else ufs.uri
        raise InvalidArgument(f"{where}: no files to read below it")
    return found


def _boto3_reads(ufs: Any, rels: list[str], readers: int) -> tuple[float, int]:
    """Direct GETs of the objects, ``readers`` threads at once, with the connector's client
    (the same endpoint, credentials and connection settings as the mount's)."""
    keys = [join(ufs.prefix, rel) if ufs.prefix else rel for rel in rels]

    def get(key: str) -> int:
        return len(ufs.client.get_object(Bucket=ufs.bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(readers) as pool:
        start = time.perf_counter()
        total = sum(pool.map(get, keys))
        return time.perf_counter() - start, total


def _umount(mnt: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "umount", mnt], capture_output=True, text=True
    )
    if done.returncode != 0:  # its daemon gone: only the kernel's side is left to clear
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)


# -- output ----------------------------------------------------------------------------------

LABELS = {
    "first": "first pass", "warm": "warm pass", "uncached": "after fadvise(DONTNEED)",
    "boto3": "direct boto3 GETs", "mount_cold": "shoal mount, cold",
    "mount_warm": "shoal mount, warm", "mount_uncached": "shoal, tiers (fadvise DONTNEED)",
}  # fmt: skip


def format_table(result: dict[str, Any]) -> str:
    d = result["dataset"]
    where = result.get("uri") or result["target"]
    made = " (written for the run, then removed)" if d["written"] else ""
    lines = [
        f"{d['files']:,} files, {d['mib']:,.1f} MiB, in {where}{made}; {result['readers']} readers",
        "",
        f"{'':<34} {'files/s':>10} {'MiB/s':>10}",
    ]
    for key, label in LABELS.items():
        if key in result:
            f = result[key]
            lines.append(f"{label:<34} {f['files_per_s']:>10,.0f} {f['mib_per_s']:>10,.1f}")
    for name, value in result.get("ratios", {}).items():
        lines.append(f"{name:<34} {value:>9.2f}x")
    return "\n".join(lines)

"""`shoal bench write`: the write workloads of issue 20 through real mounts, each against the
same work done without Shoal in the same run (cli/bench/writeloads.py):

- `tar x` of many 2 KB files in 20 directories, ended with `sync`: onto the local disk (the
  baseline, right before each mount's run: a shared machine's disk drifts), then through a
  mount of a local UFS (a directory on that same disk) with ASYNC_THROUGH, CACHE_THROUGH and
  THROUGH, a fresh home and UFS directory each; each ratio is against its own baseline;
- a large sequential write (1 MiB writes, fsync, close): onto the local disk, and right after
  through the THROUGH mount (the bytes are in the UFS when fsync returns);
- the same write through a THROUGH mount of S3 (moto's server over HTTP on 127.0.0.1), against
  boto3's own multipart upload of the same bytes to the same server: run first, right after
  the memory's warm-up (cli/bench/prefault.py).

After each mount is unmounted, the files and bytes its UFS holds are counted: the figures are
of work that really arrived, and a test checks them.

The same `tar x` (beside each mount, after its local baseline) and sequential write also run
through a bare pyfuse3 file system that keeps files in memory and does nothing else
(cli/bench/writeceiling.py): the ceiling of any pyfuse3 mount, which counts the kernel's
requests per file; Shoal's figures are also given as fractions of the ceiling run beside them.
Then `git clone` and `pip install` (cli/bench/writetools.py) onto the local disk and through
mounts of a local UFS (ASYNC_THROUGH, THROUGH), unless ``tools`` is off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cli.bench import writeloads as W
from cli.bench import writetools as WT
from cli.bench.ceiling import cpu_seconds
from cli.bench.prefault import prefault
from cli.bench.writeceiling import bare_write_mount
from engine.config import default_tiers

MODES = ("ASYNC_THROUGH", "CACHE_THROUGH", "THROUGH")


def run(
    files: int = 10_000,
    size_mib: int = 1024,
    workdir: str | None = None,
    tools: bool = True,
    repo_files: int = 3000,
    wheel: str = "botocore",
    only: str | None = None,
) -> dict[str, Any]:
    """Every workload; with ``only`` = "s3", the S3 write alone (its mount, ceiling and boto3:
    pairs of trees compared in minutes rather than a whole run each)."""
    from cli.bench.s3server import require_moto

    require_moto()  # before minutes of work that would end at the S3 server
    if tools and only is None:
        WT.require_git()
    scratch = tempfile.mkdtemp(prefix="shoal-bench-write-", dir=workdir)
    homes: list[str] = []
    # Fresh memory costs whoever touches it first: touched before any contender (the largest
    # need is the S3 write's: the spool or source, moto's parts, and its completion's copies).
    prefaulted = prefault(6 * size_mib * W.MiB)
    try:
        if only == "s3":
            result = {"size_mib": size_mib, **_s3(scratch, size_mib, homes)}
            result["prefaulted_bytes"] = prefaulted
            return {**result, **s3_ratios(result)}
        # The S3 write first, right after the memory's warm-up, as with ``only``: run after
        # minutes of tar, all three of its contenders ran slower and further apart (boto3's
        # own upload 100-137 MB/s against 150-192; docs/benchmarks.md, "Write-only handles
        # around the page cache").
        s3 = _s3(scratch, size_mib, homes)
        result = {**_local_and_mounts(scratch, files, size_mib, homes), **s3}
        if tools:
            result.update(_tools(scratch, homes, repo_files, wheel))
    finally:
        _remove_scratch(scratch, homes)
    result["prefaulted_bytes"] = prefaulted
    result.update(ratios(result))
    return result


def _local_and_mounts(scratch: str, files: int, mib: int, homes: list[str]) -> dict[str, Any]:
    archive = W.make_tar(scratch, files)
    # The first baseline's `sync` would otherwise write back what came before (the archive,
    # the S3 write's source): each local run pays for its own files only.
    os.sync()
    data = W.chunk()
    result: dict[str, Any] = {"files": files, "file_bytes": W.SMALL_SIZE, "size_mib": mib}
    local_seconds = []
    ceilings: list[dict[str, Any]] = []
    for mode in MODES:
        base = os.path.join(scratch, mode.lower())
        ufs, home, mnt = (os.path.join(base, d) for d in ("ufs", "home", "mnt"))
        for d in (ufs, mnt):
            os.makedirs(d)
        homes.append(home)
        # Each mount's baseline right before it: on a shared machine the disk's speed drifts.
        local_seconds.append(W.untar(archive, os.path.join(base, "local")))
        ceilings.append(_ceiling_tar(base, archive, files, local_seconds[-1]))
        _shoal("mount", "--home", home, ufs, mnt, "-o", f"write_type={mode}")
        try:
            figures = W.tar_figures(files, W.untar(archive, mnt))
            figures["vs_local"] = local_seconds[-1] / figures["seconds"]
            figures["vs_ceiling"] = figures["files_per_s"] / ceilings[-1]["files_per_s"]
            if mode == "THROUGH":
                local = W.local_figures(os.path.join(scratch, "seq-local.bin"), mib, data)
                result["seq_local"] = local
                result["seq_ceiling"] = _ceiling_seq(base, mib, data, local)
                seconds = W.write_sequential(os.path.join(mnt, "seq.bin"), mib, data)
                result["seq_through"] = W.seq_figures(mib, seconds)
        finally:
            _shoal("umount", mnt)
        figures["in_ufs"] = W.files_below(os.path.join(ufs, "data"))
        result[f"tar_{mode.lower()}"] = figures
        if mode == "THROUGH":
            seq = os.path.join(ufs, "seq.bin")
            result["seq_through"]["in_ufs_bytes"] = os.path.getsize(seq)
    result["tar_local"] = W.tar_figures(files, sum(local_seconds) / len(local_seconds))
    result["tar_ceiling"] = _ceiling_summary(ceilings, files)
    return result


def _ceiling_tar(base: str, archive: str, files: int, local: float) -> dict[str, Any]:
    """The same `tar x` + sync through the bare in-memory pyfuse3 file system
    (cli/bench/writeceiling.py), right after the local baseline that took ``local`` seconds and
    right before the mount it is the ceiling of: on a shared machine each drifts. Its own mount,
    so that the requests it counts are the tar's alone."""
    with bare_write_mount(base) as bare:
        seconds = W.untar(archive, bare.mountpoint)
    figures: dict[str, Any] = W.tar_figures(files, seconds)
    figures |= {"vs_local": local / seconds, "in_fs": bare.files, "requests": bare.requests}
    return figures


def _ceiling_summary(ceilings: list[dict[str, Any]], files: int) -> dict[str, Any]:
    """The ceiling's runs beside each mount, as one: mean seconds and ratio, the fewest files
    any held, requests by kind per run."""
    n = len(ceilings)
    summary: dict[str, Any] = W.tar_figures(files, sum(c["seconds"] for c in ceilings) / n)
    requests = {k: sum(c["requests"].get(k, 0) for c in ceilings) / n
                for k in sorted({k for c in ceilings for k in c["requests"]})}  # fmt: skip
    summary |= {
        "vs_local": sum(c["vs_local"] for c in ceilings) / n,
        "in_fs": min(c["in_fs"] for c in ceilings), "requests": requests,
        "requests_per_file": sum(requests.values()) / files, "runs": ceilings,
    }  # fmt: skip
    return summary


def _ceiling_seq(base: str, mib: int, data: bytes, local: dict[str, float]) -> dict[str, Any]:
    """The same sequential write through the bare file system, right after the local one."""
    with bare_write_mount(base) as bare:
        seconds = W.write_sequential(os.path.join(bare.mountpoint, "seq.bin"), mib, data)
    figures: dict[str, Any] = W.seq_figures(mib, seconds)
    figures |= {
        "vs_local": figures["mb_per_s"] / local["mb_per_s"], "in_fs_bytes": bare.bytes,
        "requests": bare.requests,
    }  # fmt: skip
    return figures


def _tools(scratch: str, homes: list[str], repo_files: int, package: str) -> dict[str, Any]:
    """`git clone` and `pip install` (cli/bench/writetools.py) through a mount of a local UFS,
    with ASYNC_THROUGH and THROUGH, each between two runs onto the local disk (the faster is
    the baseline: one such run took 2.8 s in one minute and 11.7 s in another); each result
    checked where it landed."""
    repo = WT.make_repo(scratch, repo_files)
    wheel, in_wheel = WT.build_wheel(package, scratch)
    result: dict[str, Any] = {"repo_files": repo_files, "wheel": os.path.basename(wheel),
                              "wheel_files": in_wheel}  # fmt: skip
    for mode in ("ASYNC_THROUGH", "THROUGH"):
        base = os.path.join(scratch, f"tools-{mode.lower()}")
        before = _local_tools(repo, wheel, os.path.join(base, "local-before"))
        with _mounted(base, mode, homes) as (ufs, mnt):
            clone = WT.git_clone(repo, os.path.join(mnt, "clone"))
            checked_out = WT.check_clone(os.path.join(mnt, "clone"), repo_files)
            pip = WT.pip_install(wheel, os.path.join(mnt, "pip"))
            on_mount = W.files_below(os.path.join(mnt, "pip"))
        after = _local_tools(repo, wheel, os.path.join(base, "local-after"))
        if not on_mount == before[2] == after[2]:
            raise RuntimeError(f"pip install left {on_mount} files on the mount, {after[2]} local")
        key = mode.lower()
        for tool, seconds, local, extra in (
            ("git_clone", clone, (before[0], after[0]), {"files": checked_out}),
            ("pip_install", pip, (before[1], after[1]),
             {"files": on_mount, "in_ufs": W.files_below(os.path.join(ufs, "pip"))}),
        ):  # fmt: skip
            result[f"{tool}_{key}"] = {
                "seconds": seconds, "local_seconds": min(local), "local_runs": list(local),
                "vs_local": min(local) / seconds, **extra,
            }  # fmt: skip
    return result


def _local_tools(repo: str, wheel: str, dest: str) -> tuple[float, float, int]:
    """The clone and the install onto the local disk below ``dest``: (clone seconds, install
    seconds, files installed)."""
    os.makedirs(dest)
    clone = WT.git_clone(repo, os.path.join(dest, "clone"))
    pip = WT.pip_install(wheel, os.path.join(dest, "pip"))
    return clone, pip, W.files_below(os.path.join(dest, "pip"))


@contextmanager
def _mounted(base: str, mode: str, homes: list[str]) -> Iterator[tuple[str, str]]:
    """A mount of a fresh local UFS (``base``/ufs, on the local disk) with write type ``mode``
    while inside: (the UFS directory, the mount point)."""
    ufs, home, mnt = (os.path.join(base, d) for d in ("ufs", "home", "mnt"))
    for d in (ufs, mnt):
        os.makedirs(d)
    homes.append(home)
    _shoal("mount", "--home", home, ufs, mnt, "-o", f"write_type={mode}")
    try:
        yield ufs, mnt
    finally:
        _shoal("umount", mnt)


def _s3(scratch: str, mib: int, homes: list[str]) -> dict[str, Any]:
    data = W.chunk()
    # boto3's source in RAM where there is a tmpfs: on the disk, the local `tar x` baselines
    # after it ran 2-15x slower (its gigabyte written back, then removed from a root mounted
    # `discard`; docs/benchmarks.md).
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else scratch
    fd, source = tempfile.mkstemp(prefix="shoal-bench-s3-source-", dir=shm)
    try:
        with os.fdopen(fd, "wb") as f:
            for _ in range(mib):
                f.write(data)
        return _s3_contenders(scratch, mib, homes, data, source)
    finally:
        os.unlink(source)


def _s3_contenders(
    scratch: str, mib: int, homes: list[str], data: bytes, source: str
) -> dict[str, Any]:
    """The mount, the S3 ceiling and boto3 (from ``source``), one after another on one server."""
    from cli.bench.s3server import s3_client, start_s3_server

    home, mnt = os.path.join(scratch, "s3", "home"), os.path.join(scratch, "s3", "mnt")
    os.makedirs(mnt)
    homes.append(home)
    server = start_s3_server()
    try:
        client = s3_client(server.endpoint)
        client.create_bucket(Bucket="bench")
        _shoal(*_s3_mount_args(home, mnt, server.endpoint))
        try:
            mount = W.seq_figures(mib, W.write_sequential(os.path.join(mnt, "seq.bin"), mib, data))
        finally:
            _shoal("umount", mnt)
        mount["in_store_bytes"] = _stored(client, "w/seq.bin")
        ceiling = _s3_ceiling(scratch, server.endpoint, client, mib, data)
        boto3 = W.seq_figures(mib, W.boto3_multipart(client, "bench", "direct.bin", source))
    finally:
        server.stop()
    return {"s3_mount": mount, "s3_ceiling": ceiling, "s3_boto3": boto3}


def _s3_ceiling(scratch: str, endpoint: str, client: Any, mib: int, data: bytes) -> dict[str, Any]:
    """The same write through the bare pyfuse3 file system that streams it into a multipart
    upload as boto3 would (cli/bench/s3memfs.py): what any pyfuse3 mount of S3 can reach here."""
    with bare_write_mount(scratch, s3=(endpoint, "bench", "ceiling")) as ceiling:
        path = os.path.join(ceiling.mountpoint, "seq.bin")
        start = cpu_seconds(ceiling.pid)
        figures = W.seq_figures(mib, W.write_sequential(path, mib, data))
        figures["server_cpu_s"] = cpu_seconds(ceiling.pid) - start
    figures["in_store_bytes"] = _stored(client, "ceiling/seq.bin")
    return figures


def _stored(client: Any, key: str) -> int:
    """The object's size, then the object deleted: moto keeps objects in its memory, and each
    upload after the first would otherwise run beside the ones before it."""
    size = int(client.head_object(Bucket="bench", Key=key)["ContentLength"])
    client.delete_object(Bucket="bench", Key=key)
    return size


def _s3_mount_args(home: str, mnt: str, endpoint: str) -> list[str]:
    from cli.bench.s3server import ACCESS_KEY, SECRET_KEY

    options = {
        "endpoint": endpoint, "path_style": "true", "region": "us-east-1",
        "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "write_type": "THROUGH",
    }  # fmt: skip
    args = ["mount", "--home", home, "s3://bench/w", mnt]
    for key, value in options.items():
        args += ["-o", f"{key}={value}"]
    return args


def _shoal(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"shoal {args[0]} failed: {done.stderr.strip()}")


def _remove_scratch(scratch: str, homes: list[str]) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
    # A home's default MEM tier lives on /dev/shm, outside the scratch directory: left there,
    # every run would keep RAM.
    for home in homes:
        for tier in default_tiers(home):
            for path in tier.paths:
                shutil.rmtree(path, ignore_errors=True)


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """Each against its own baseline, measured right before it; Shoal's against the ceiling
    measured right before it (each mount's tar beside its own ceiling run)."""
    cached = max(result["tar_async_through"]["vs_local"], result["tar_cache_through"]["vs_local"])
    out = {
        "tar_small_vs_local": cached,
        "tar_small_through_vs_local": result["tar_through"]["vs_local"],
        "seq_write_vs_local": result["seq_through"]["mb_per_s"] / result["seq_local"]["mb_per_s"],
        **s3_ratios(result),
        "tar_small_ceiling_vs_local": result["tar_ceiling"]["vs_local"],
        "seq_write_ceiling_vs_local": result["seq_ceiling"]["vs_local"],
        "tar_ceiling_requests_per_file": result["tar_ceiling"]["requests_per_file"],
    }
    out["tar_small_vs_ceiling"] = max(
        result["tar_async_through"]["vs_ceiling"], result["tar_cache_through"]["vs_ceiling"]
    )
    out["tar_small_through_vs_ceiling"] = result["tar_through"]["vs_ceiling"]
    seq_ceiling = result["seq_ceiling"]["mb_per_s"]
    out["seq_write_vs_ceiling"] = result["seq_through"]["mb_per_s"] / seq_ceiling
    for tool in ("git_clone", "pip_install"):
        if f"{tool}_through" in result:
            out[f"{tool}_vs_local"] = result[f"{tool}_async_through"]["vs_local"]
            out[f"{tool}_through_vs_local"] = result[f"{tool}_through"]["vs_local"]
    return out


def s3_ratios(result: dict[str, Any]) -> dict[str, float]:
    mount, ceiling, boto3 = (result[k]["mb_per_s"] for k in ("s3_mount", "s3_ceiling", "s3_boto3"))
    return {
        "s3_write_vs_boto3": mount / boto3,
        "s3_ceiling_vs_boto3": ceiling / boto3,
        "s3_write_vs_s3_ceiling": mount / ceiling,
    }


GOALS = {
    "tar_small_vs_local": 0.3,
    "tar_small_through_vs_local": 0.1,
    "seq_write_vs_local": 0.5,
    "s3_write_vs_boto3": 0.8,
}
TAR_ROWS = [
    ("local disk, tar x + sync", "tar_local"),
    ("bare pyfuse3 (in memory): ceiling", "tar_ceiling"),
    ("mount, ASYNC_THROUGH", "tar_async_through"),
    ("mount, CACHE_THROUGH", "tar_cache_through"),
    ("mount, THROUGH", "tar_through"),
]
SEQ_ROWS = [
    ("local disk", "seq_local"),
    ("bare pyfuse3 (in memory): ceiling", "seq_ceiling"),
    ("mount of a local UFS, THROUGH", "seq_through"),
    ("mount of S3 (moto), THROUGH", "s3_mount"),
    ("bare pyfuse3 streaming to S3", "s3_ceiling"),
    ("boto3 multipart upload to S3", "s3_boto3"),
]


def format_table(result: dict[str, Any]) -> str:
    """The figures a run has (``only`` = "s3": its rows and ratios alone)."""
    lines = _tar_lines(result)
    lines += [f"{result['size_mib']:,} MiB in 1 MiB writes, then fsync and close"]
    lines.append(f"{'':<34} {'seconds':>9} {'MB/s':>10}")
    for label, key in SEQ_ROWS:
        if key in result:
            r = result[key]
            lines.append(f"{label:<34} {r['seconds']:>9.2f} {r['mb_per_s']:>10,.1f}")
    lines += _tool_lines(result)
    lines.append("")
    for name, goal in GOALS.items():
        if name in result:
            lines.append(f"{name:<28} {result[name]:6.2f}x  (goal {goal}x)")
    for name in CEILING_RATIOS:
        if name in result:
            lines.append(f"{name:<28} {result[name]:6.2f}x")
    if "tar_ceiling" not in result:
        return "\n".join(lines)
    requests = result["tar_ceiling"]["requests"]
    lines.append(
        f"requests per file of tar x: {result['tar_ceiling_requests_per_file']:.1f} ("
        + ", ".join(f"{k} {v / result['files']:.1f}" for k, v in sorted(requests.items()))
        + ")"
    )
    return "\n".join(lines)


def _tar_lines(result: dict[str, Any]) -> list[str]:
    if "tar_local" not in result:
        return []
    lines = [
        f"tar x of {result['files']:,} files of {result['file_bytes']} bytes, then sync",
        f"{'':<34} {'seconds':>9} {'files/s':>10}",
    ]
    for label, key in TAR_ROWS:
        r = result[key]
        lines.append(f"{label:<34} {r['seconds']:>9.2f} {r['files_per_s']:>10,.0f}")
    return [*lines, ""]


CEILING_RATIOS = (
    "tar_small_ceiling_vs_local", "tar_small_vs_ceiling", "tar_small_through_vs_ceiling",
    "seq_write_ceiling_vs_local", "seq_write_vs_ceiling",
    "s3_ceiling_vs_boto3", "s3_write_vs_s3_ceiling",
)  # fmt: skip


def _tool_lines(result: dict[str, Any]) -> list[str]:
    if "git_clone_through" not in result:
        return []
    lines = [
        "",
        f"git clone of {result['repo_files']:,} files; pip install of {result['wheel']}"
        f" ({result['wheel_files']:,} files)",
        f"{'':<34} {'seconds':>9} {'local s':>10} {'vs local':>9}",
    ]
    for tool in ("git_clone", "pip_install"):
        for mode in ("async_through", "through"):
            r = result[f"{tool}_{mode}"]
            label = f"{tool.replace('_', ' ')}, {mode.upper()}"
            seconds = f"{r['seconds']:>9.2f} {r['local_seconds']:>10.2f}"
            lines.append(f"{label:<34} {seconds} {r['vs_local']:>8.2f}x")
    return lines


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result)

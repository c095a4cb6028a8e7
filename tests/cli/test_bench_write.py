"""`shoal bench write`, run tiny: its figures are present and the work it timed really arrived
in the stores (not how fast: benchmarks print figures, tests do not time); its ceiling, the
bare in-memory pyfuse3 file system, holds what was written to it."""

from __future__ import annotations

import errno
import filecmp
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from cli.bench.s3server import S3Server, s3_client
from cli.bench.write import format_table
from cli.bench.writeceiling import bare_write_mount
from tests.cli.shoal_cli import shoal

MiB = 1 << 20

FIGURES = {
    "tar_local": "files_per_s",
    "tar_async_through": "files_per_s",
    "tar_cache_through": "files_per_s",
    "tar_through": "files_per_s",
    "seq_local": "mb_per_s",
    "seq_through": "mb_per_s",
    "s3_mount": "mb_per_s",
    "s3_ceiling": "mb_per_s",
    "s3_boto3": "mb_per_s",
}
RATIOS = (
    "tar_small_vs_local",
    "tar_small_through_vs_local",
    "seq_write_vs_local",
    "s3_write_vs_boto3",
    "tar_small_ceiling_vs_local",
    "seq_write_ceiling_vs_local",
    "tar_small_vs_ceiling",
    "tar_small_through_vs_ceiling",
    "seq_write_vs_ceiling",
    "s3_ceiling_vs_boto3",
    "s3_write_vs_s3_ceiling",
)
TOOL_RATIOS = (
    "git_clone_vs_local",
    "git_clone_through_vs_local",
    "pip_install_vs_local",
    "pip_install_through_vs_local",
)


def test_bench_write_json_figures_and_files_in_the_stores(tmp_path: Path) -> None:
    files, mib, repo_files = 60, 3, 40
    args = ["--files", str(files), "--size", "3", "--repo-files", str(repo_files)]
    proc = shoal("bench", "write", str(tmp_path), "--json", *args, "--wheel", "iniconfig")
    result = json.loads(proc.stdout)
    for key, unit in FIGURES.items():
        assert result[key]["seconds"] > 0 and result[key][unit] > 0, key
    for key in RATIOS + TOOL_RATIOS:
        assert result[key] > 0, key
    # The ceiling held every file and byte, and the kernel sent one CREATE per file: the
    # requests it counted are tar's.
    ceiling = result["tar_ceiling"]
    assert [run["in_fs"] for run in ceiling["runs"]] == [files] * 3
    assert ceiling["in_fs"] == files and ceiling["requests"]["create"] == files
    assert ceiling["requests_per_file"] == result["tar_ceiling_requests_per_file"] > 3
    assert result["seq_ceiling"]["in_fs_bytes"] == mib << 20
    # The clones checked out every file (after git fsck and a clean git status on the mount);
    # pip left as many files on the mount as on the local disk, and they reached the UFS.
    for mode in ("async_through", "through"):
        assert result[f"git_clone_{mode}"]["files"] == repo_files, mode
        for tool in ("git_clone", "pip_install"):
            r = result[f"{tool}_{mode}"]
            assert len(r["local_runs"]) == 2 and r["local_seconds"] == min(r["local_runs"]), tool
        pip = result[f"pip_install_{mode}"]
        assert pip["files"] == pip["in_ufs"] > result["wheel_files"] > 1, mode
    # Every extracted file is in the UFS once the mount is gone; the writes that promise it
    # (the two THROUGH types) had it there before close returned.
    for mode in ("async_through", "cache_through", "through"):
        assert result[f"tar_{mode}"]["in_ufs"] == files, mode
        assert result[f"tar_{mode}"]["vs_local"] > 0, mode
        assert result[f"tar_{mode}"]["vs_ceiling"] > 0, mode
    assert result["seq_through"]["in_ufs_bytes"] == mib << 20
    assert result["s3_mount"]["in_store_bytes"] == mib << 20
    assert result["s3_ceiling"]["in_store_bytes"] == mib << 20
    assert list(tmp_path.iterdir()) == []  # its scratch directory went with it


def test_bench_write_refuses_zero_files(tmp_path: Path) -> None:
    proc = shoal("bench", "write", str(tmp_path), "--files", "0", expect=2)
    assert "--files: needs at least 1" in proc.stderr


def test_bench_write_no_tools_skips_clone_and_install(tmp_path: Path) -> None:
    proc = shoal("bench", "write", str(tmp_path), "--json", "--files", "4", "--size", "1",
                 "--no-tools")  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["tar_ceiling"]["in_fs"] == 4
    assert not [key for key in result if key.startswith(("git_", "pip_"))]
    assert list(tmp_path.iterdir()) == []


def test_bench_write_refuses_a_wheel_not_installed(tmp_path: Path) -> None:
    proc = shoal("bench", "write", str(tmp_path), "--wheel", "no-such-dist-here", expect=2)
    assert "'no-such-dist-here' is not installed here" in proc.stderr


def test_write_ceiling_holds_what_tar_wrote_and_cleans_up(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(30):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}").write_bytes(os.urandom(i * 1000))
    archive = tmp_path / "t.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname="data")
    with bare_write_mount(str(tmp_path)) as bare:
        subprocess.run(["tar", "xf", str(archive), "-C", bare.mountpoint], check=True)
        tree = Path(bare.mountpoint) / "data"
        match, mismatch, errors = filecmp.cmpfiles(
            src, tree, [f"d{i % 3}/f{i}" for i in range(30)], shallow=False
        )
        assert (len(match), mismatch, errors) == (30, [], [])
        assert (tree / "d1" / "f4").stat().st_size == 4000
        os.truncate(tree / "d1" / "f4", 10)
        assert (tree / "d1" / "f4").read_bytes() == (src / "d1" / "f4").read_bytes()[:10]
        subprocess.run(["rm", "-r", str(tree / "d2")], check=True)
        assert sorted(os.listdir(tree)) == ["d0", "d1"]
    assert bare.files == 20 and bare.requests["create"] == 30 and bare.requests["unlink"] == 10
    assert sorted(tmp_path.iterdir()) == [src, archive]  # its mount point and counts went


def test_write_ceiling_without_xattrs_is_asked_for_them_once(tmp_path: Path) -> None:
    # ENOSYS turns extended attributes off for the connection: the kernel's security.capability
    # check before each write and chown (2 GETXATTR per extracted file otherwise) stops.
    for xattrs, expected in ((True, 20), (False, 1)):
        with bare_write_mount(str(tmp_path), xattrs=xattrs) as bare:
            for i in range(10):
                path = os.path.join(bare.mountpoint, f"f{i}")
                with open(path, "wb") as f:
                    f.write(b"x")
                os.chown(path, 0, 0)
        assert bare.requests.get("getxattr", 0) == expected, xattrs


def test_s3_write_ceiling_streams_parts_and_tail_into_objects(
    tmp_path: Path, s3_server: S3Server
) -> None:
    # Two whole 8 MiB parts and a tail, written in 1 MiB writes that do not fall on the parts'
    # boundaries, completed at fsync; a small file completed at close alone (one PUT).
    client = s3_client(s3_server.endpoint)
    client.create_bucket(Bucket="ceil")
    big = os.urandom(16 * MiB + 12345)
    with bare_write_mount(str(tmp_path), s3=(s3_server.endpoint, "ceil", "p")) as bare:
        fd = os.open(os.path.join(bare.mountpoint, "big"), os.O_WRONLY | os.O_CREAT, 0o644)
        for start in range(0, len(big), MiB - 7):
            os.write(fd, big[start : start + MiB - 7])
        os.fsync(fd)
        os.close(fd)
        with open(os.path.join(bare.mountpoint, "small"), "wb") as f:
            f.write(b"tail only")
        with pytest.raises(OSError) as refused:  # not sequential: no ceiling of this
            with open(os.path.join(bare.mountpoint, "gap"), "wb") as f:
                f.seek(10)
                f.write(b"x")
        assert refused.value.errno == errno.EIO
    assert client.get_object(Bucket="ceil", Key="p/big")["Body"].read() == big
    assert client.get_object(Bucket="ceil", Key="p/small")["Body"].read() == b"tail only"
    assert bare.bytes == len(big) + len(b"tail only")
    assert client.list_multipart_uploads(Bucket="ceil").get("Uploads", []) == []


def test_bench_write_only_s3_runs_the_s3_write_alone(tmp_path: Path) -> None:
    proc = shoal("bench", "write", str(tmp_path), "--json", "--only", "s3", "--size", "2")
    result = json.loads(proc.stdout)
    for key in ("s3_mount", "s3_ceiling", "s3_boto3"):
        assert result[key]["mb_per_s"] > 0, key
    for key in ("s3_mount", "s3_ceiling"):
        assert result[key]["in_store_bytes"] == 2 * MiB, key
    ratios = {"s3_write_vs_boto3", "s3_ceiling_vs_boto3", "s3_write_vs_s3_ceiling"}
    assert (
        set(result)
        == {"size_mib", "s3_mount", "s3_ceiling", "s3_boto3", "prefaulted_bytes"} | ratios
    )
    table = format_table(result)
    assert "mount of S3 (moto), THROUGH" in table and "s3_write_vs_s3_ceiling" in table
    assert "tar x" not in table
    assert list(tmp_path.iterdir()) == []

"""`shoal bench read --mount DIR` and `shoal bench read UFS_URI` (issue 16 item 5, issue 17):
the benchmark's reader workload on the user's own mount, directory or bucket, run as a user
types it. Figures are never asserted (the machine is noisy): only that each pass was measured,
that nothing the run made is left behind, and that nothing it was only to read was written."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server, s3_client
from engine.config import default_tiers
from fuse.mountinfo import shoal_mounts
from tests.cli.shoal_cli import env, shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore

TINY = ("--classes", "2", "--per-class", "6", "--readers", "2")


def _passes(result: dict[str, object], *names: str) -> None:
    for name in names:
        figures = result[name]
        assert isinstance(figures, dict), name
        assert figures["files_per_s"] > 0 and figures["mib_per_s"] > 0, (name, figures)


def test_bench_mount_on_a_shoal_mount_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    store.put("keep/me.bin", b"the user's own file")
    with mounted(store, tmp_path) as m:
        proc = shoal("bench", "read", "--mount", str(m.path), "--json", "--drop-cache", *TINY)
        result = json.loads(proc.stdout)
        _passes(result, "first", "warm", "uncached")
        assert result["dataset"]["files"] == 12 and result["dataset"]["written"] is True
        assert sorted(os.listdir(m.path)) == ["keep"]  # its bench directory is gone
    assert store.keys() == {"keep/", "keep/me.bin"}  # from the store too


def test_bench_mount_dataset_only_reads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    for i in range(7):
        store.put(f"train/c{i % 2}/f{i}.bin", os.urandom(50_000 + i))
    before = store.keys()
    with mounted(store, tmp_path, "ro") as m:  # read-only to the kernel: nothing could be written
        proc = shoal(
            "bench", "read", "--mount", str(m.path), "--dataset", "train", "--files", "5",
            "--drop-cache", "--json", "--readers", "2",
        )  # fmt: skip
        result = json.loads(proc.stdout)
        _passes(result, "first", "warm", "uncached")
        assert result["dataset"]["files"] == 5 and result["dataset"]["written"] is False
        refused = shoal("bench", "read", "--mount", str(m.path), *TINY, expect=1)
        assert "is not writable" in refused.stderr and "--dataset" in refused.stderr
    assert store.keys() == before


def test_bench_drop_cache_reaches_the_file_system(tmp_path: Path) -> None:
    """fadvise(DONTNEED) drops a FUSE file's pages: after a run that left every file in the
    page cache, a --drop-cache run's first and uncached passes are both read by Shoal (its
    cache hits), which a plain second run would have had from the kernel."""
    store = LocalStore(tmp_path / "ufs")
    for i in range(6):
        store.put(f"set/f{i}.bin", os.urandom(40_000))
    args = ("bench", "read", "--dataset", "set", "--json", "--readers", "2")
    with mounted(store, tmp_path, "ro") as m:

        def hits() -> int:
            return int(json.loads(shoal("report", "--json", home=m.home).stdout)["cache_hits"])

        shoal(*args, "--mount", str(m.path))  # every file cached, and in the page cache
        before = hits()
        shoal(*args, "--mount", str(m.path), "--drop-cache")
        assert hits() - before >= 2 * 6


def test_bench_mount_on_a_plain_directory(tmp_path: Path) -> None:
    target = tmp_path / "plain"
    target.mkdir()
    proc = shoal("bench", "read", "--mount", str(target), *TINY)
    assert "first pass" in proc.stdout and "warm pass" in proc.stdout
    proc = shoal("bench", "read", "--mount", str(target), "--json", *TINY)
    result = json.loads(proc.stdout)
    _passes(result, "first", "warm")
    assert "uncached" not in result  # only with --drop-cache
    assert list(target.iterdir()) == []


def test_bench_mount_bad_inputs(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (("--mount", str(tmp_path / "missing")), 1, "no such directory"),
        (("--mount", str(a_file)), 1, "is not a directory"),
        (("--mount", str(tmp_path), "--dataset", "nope"), 1, "no such directory"),
        (("--mount", str(tmp_path), "s3://b/p"), 2, "not both"),
        (("--mount", str(tmp_path), "-o", "region=x"), 2, "go with a UFS_URI"),
        ((str(tmp_path), "--dataset", "x"), 2, "--dataset goes with --mount"),
    ]
    (tmp_path / "empty").mkdir()
    cases.append((("--mount", str(tmp_path), "--dataset", "empty"), 1, "no files to read"))
    for args, code, words in cases:
        proc = shoal("bench", "read", *args, expect=code)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, proc.stderr)


def _bucket(server: S3Server, files: int) -> str:
    bucket = f"benchme-{uuid.uuid4().hex[:10]}"
    client = s3_client(server.endpoint)
    client.create_bucket(Bucket=bucket)
    for i in range(files):
        client.put_object(Bucket=bucket, Key=f"ds/n{i % 3}/img{i}.JPEG", Body=os.urandom(30_000))
    client.put_object(Bucket=bucket, Key="elsewhere/not-read", Body=b"x")
    return bucket


def _s3_options(server: S3Server) -> list[str]:
    opts = ["-o", f"endpoint={server.endpoint}", "-o", "path_style=true"]
    return opts + ["-o", "region=us-east-1", "-o", f"access_key={ACCESS_KEY}"]


def test_bench_s3_uri_cold_warm_and_boto3(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = _bucket(s3_server, 9)
    proc = shoal(
        "bench", "read", f"s3://{bucket}/ds", *_s3_options(s3_server), "--secret-key-stdin",
        "--json", "--drop-cache", "--readers", "2", "--files", "8",
        input=SECRET_KEY + "\n", env=env(TMPDIR=str(tmp_path)),
    )  # fmt: skip
    result = json.loads(proc.stdout)
    _passes(result, "boto3", "mount_cold", "mount_warm", "mount_uncached")
    assert result["dataset"]["files"] == 8
    assert result["ratios"]["cold_vs_boto3"] > 0
    assert SECRET_KEY not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []  # its home and mount point are gone
    assert os.path.join(os.path.dirname(result["home"]), "mnt") not in shoal_mounts()
    for tier in default_tiers(result["home"]):  # and its MEM tier, on /dev/shm
        assert not any(os.path.exists(p) for p in tier.paths), tier
    listed = s3_client(s3_server.endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listed) == 10  # the mount was read-only: nothing written to the store


def test_bench_uri_bad_inputs(s3_server: S3Server, tmp_path: Path) -> None:
    secret = ["-o", f"secret_key={SECRET_KEY}"]
    missing = shoal(
        "bench", "read", "s3://no-such-bucket-here/ds", *_s3_options(s3_server), *secret,
        expect=1, env=env(TMPDIR=str(tmp_path)),
    )  # fmt: skip
    errors = [line for line in missing.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "does not exist" in errors[0], missing.stderr
    assert SECRET_KEY not in missing.stderr
    empty = f"empty-{uuid.uuid4().hex[:8]}"
    s3_client(s3_server.endpoint).create_bucket(Bucket=empty)
    nothing = shoal(
        "bench", "read", f"s3://{empty}/ds", *_s3_options(s3_server), *secret, expect=1,
        env=env(TMPDIR=str(tmp_path)),
    )  # fmt: skip
    assert "no files to read" in nothing.stderr
    unknown = shoal(
        "bench", "read", f"s3://{empty}/ds", "-o", "endpoint_url=http://x", expect=1,
        env=env(TMPDIR=str(tmp_path)),
    )  # fmt: skip
    assert "did you mean 'endpoint'" in unknown.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_file_uri_mounts_a_local_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    for i in range(5):
        store.put(f"d{i % 2}/f{i}.bin", os.urandom(20_000))
    before = store.keys()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = shoal(
        "bench", "read", f"file://{store.root}", "--json", "--readers", "2",
        env=env(TMPDIR=str(scratch)),
    )  # fmt: skip
    result = json.loads(proc.stdout)
    _passes(result, "mount_cold", "mount_warm")
    assert "boto3" not in result and "ratios" not in result  # direct GETs are S3's only
    assert result["dataset"]["files"] == 5
    assert store.keys() == before and list(scratch.iterdir()) == []

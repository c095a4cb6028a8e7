"""The cold-S3 ceiling of `shoal bench read` (cli/bench/s3ceiling.py): a bare pyfuse3 mount of
a bucket prefix serves its objects byte for byte, and is unmounted even when a reader fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cli.bench import s3ceiling
from cli.bench.ceiling import served
from cli.bench.s3server import s3_client, start_s3_server


def _dataset(src: Path) -> dict[str, bytes]:
    """Files in two directories, one larger than a FUSE read and one empty."""
    files = {
        "train/a/one.bin": os.urandom(300_000),  # several READs of one GET's bytes
        "train/a/empty.bin": b"",
        "train/b/two.bin": os.urandom(5_000),
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return files


def test_s3_ceiling_serves_objects_and_unmounts_after_failing_reader(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = _dataset(src)
    server = start_s3_server()
    try:
        client = s3_client(server.endpoint)
        client.create_bucket(Bucket=s3ceiling.BUCKET)
        for rel, data in files.items():
            client.put_object(Bucket=s3ceiling.BUCKET, Key=s3ceiling.PREFIX + rel, Body=data)
        mnt = tmp_path / "mnt"
        for flags in ([], ["--listed"]):  # directories listed at first lookup, or before
            mnt.mkdir()
            args = [sys.executable, "-m", "cli.bench.s3ceiling", str(mnt), server.endpoint, "2"]
            with served(args + flags, str(mnt), "S3 file system"):
                for rel, data in files.items():
                    assert (mnt / rel).read_bytes() == data, (rel, flags)
                assert not (mnt / "train/a/missing.bin").exists()
                assert not (mnt / "train/c").exists()
            assert not mnt.exists()  # unmounted, its mount point removed

        scratch = tmp_path / "scratch"
        scratch.mkdir()
        small = [str(src / rel) for rel in files] + [str(src / "train/b/missing.bin")]
        with pytest.raises(FileNotFoundError):
            s3ceiling.epoch(str(scratch), str(src), small, server.endpoint, 2)
        assert list(scratch.iterdir()) == []  # the failed epoch's mount is gone too
    finally:
        server.stop()

"""`shoal fs mount|unmount|mounts` on a home, against a local UFS and S3 (moto over HTTP); and
the rule that a secret given as a mount option lands only in <home>/credentials (mode 0600)."""

from __future__ import annotations

import io
import json
import os
import stat
import uuid
from pathlib import Path

from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server, s3_client
from tests.cli.shoal_cli import shoal
from tests.invariants import OpenEngine


def test_mount_rules_on_local_paths(tmp_path: Path) -> None:
    home, data, other = tmp_path / "home", tmp_path / "data", tmp_path / "other"
    (data / "sub").mkdir(parents=True)
    other.mkdir()
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "-p", "/mnt/a", "/mnt/b", "/full/x", home=home)
    shoal("fs", "mount", "/mnt/a", str(data), home=home)
    out = shoal("fs", "mounts", home=home).stdout
    assert out.strip() == f"/mnt/a\t{data}\trw"
    # Over a non-empty directory: refused, nothing journaled.
    err = shoal("fs", "mount", "/full", str(other), home=home, expect=1).stderr
    assert "not empty" in err and "would hide" in err
    # Overlapping UFS locations: the same directory, or one inside the other.
    for uri in (str(data), str(data / "sub"), f"file://{tmp_path}"):
        err = shoal("fs", "mount", "/mnt/b", uri, home=home, expect=1).stderr
        assert "overlaps" in err and "/mnt/a" in err
    err = shoal("fs", "mount", "/mnt/b", str(tmp_path / "missing"), home=home, expect=1).stderr
    assert "missing" in err
    shoal("fs", "mount", "--readonly", "/mnt/b", str(other), home=home)
    err = shoal("fs", "mkdir", "/mnt/b/new", home=home, expect=1).stderr
    assert "read-only" in err
    shoal("fs", "mkdir", "/mnt/a/made", home=home)
    err = shoal("fs", "rm", "-R", "/mnt", home=home, expect=1).stderr
    assert "mount point" in err
    shoal("fs", "unmount", "/mnt/a", home=home)
    assert shoal("fs", "ls", "/mnt/a", home=home).stdout == ""
    out = shoal("fs", "mounts", home=home).stdout
    assert out.strip() == f"/mnt/b\t{other}\tro"
    err = shoal("fs", "unmount", "/mnt/a", home=home, expect=1).stderr
    assert "not a mount point" in err
    # The table survives a restart with a full replay and with a checkpoint.
    shoal("journal", "checkpoint", home=home)
    assert shoal("fs", "mounts", home=home).stdout.strip() == f"/mnt/b\t{other}\tro"


def test_a_secret_reaches_only_the_credentials_file(
    home: Path, s3_server: S3Server, open_engine: OpenEngine
) -> None:
    bucket = f"sec-{uuid.uuid4().hex[:10]}"
    s3_client(s3_server.endpoint).create_bucket(Bucket=bucket)
    session_token = "session-token-" + uuid.uuid4().hex
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "/s3", home=home)
    proc = shoal(
        "-v", "fs", "mount", "/s3", f"s3://{bucket}/train",
        "-o", f"endpoint={s3_server.endpoint}", "-o", "path_style=true",
        "-o", "region=us-east-1", "-o", f"access_key={ACCESS_KEY}",
        "-o", f"secret_key={SECRET_KEY}", "-o", f"session_token={session_token}",
        home=home,
    )  # fmt: skip
    logs = proc.stdout + proc.stderr
    listing = shoal("fs", "mounts", "--json", home=home).stdout
    assert f"s3://{bucket}/train" in listing and '"has_credentials": true' in listing
    shoal("journal", "checkpoint", home=home)
    logs += shoal("journal", "dump", home=home).stdout
    logs += shoal("-v", "fs", "mounts", home=home).stderr
    secrets = (SECRET_KEY, session_token, ACCESS_KEY)
    holders = []
    for folder, _dirs, files in os.walk(home):
        for name in files:
            path = Path(folder) / name
            content = path.read_bytes()
            if any(s.encode() in content for s in secrets):
                holders.append(path)
    credentials = home / "credentials"
    assert holders == [credentials]
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert not any(s in logs for s in secrets)
    # Found again after a restart: the mount works without the keys on the command line.
    engine = open_engine()
    try:
        ((mounted_at, mount),) = engine.mounts.listing()
        assert mounted_at == "/s3" and mount.credential and SECRET_KEY not in repr(mount)
        ufs = engine.mounts.connector(mount)
        ufs.write("hello.txt", io.BytesIO(b"hi"))
        assert ufs.read("hello.txt", 0, 10) == b"hi"
    finally:
        engine.close(checkpoint=False)
    raw = s3_client(s3_server.endpoint).get_object(Bucket=bucket, Key="train/hello.txt")
    assert raw["Body"].read() == b"hi"
    shoal("fs", "unmount", "/s3", home=home)
    assert credentials.read_text().strip() == "{}"


def test_a_secret_file_is_kept_by_reference(
    home: Path, tmp_path: Path, s3_server: S3Server, open_engine: OpenEngine
) -> None:
    bucket = f"ref-{uuid.uuid4().hex[:10]}"
    s3_client(s3_server.endpoint).create_bucket(Bucket=bucket)
    key_file = tmp_path / "secret-key"
    key_file.write_text(SECRET_KEY + "\n")
    key_file.chmod(0o640)
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "/s3", home=home)
    args = ["fs", "mount", "/s3", f"s3://{bucket}/train", "-o", f"endpoint={s3_server.endpoint}",
            "-o", "path_style=true", "-o", "region=us-east-1", "-o", f"access_key={ACCESS_KEY}",
            "-o", f"secret_key_file={key_file}"]  # fmt: skip
    refused = shoal(*args, home=home, expect=1).stderr
    assert f"secret_key_file {key_file} is mode 0640" in refused and "chmod 600" in refused
    assert shoal("fs", "mounts", home=home).stdout == ""
    key_file.chmod(0o600)
    done = shoal(*args, home=home)
    assert "visible to every user" not in done.stderr
    credentials = json.loads((home / "credentials").read_text())
    assert list(credentials.values()) == [
        {"access_key": ACCESS_KEY, "secret_key_file": str(key_file)}
    ]
    for folder, _dirs, files in os.walk(home):
        for name in files:
            assert SECRET_KEY.encode() not in (Path(folder) / name).read_bytes(), name
    # A later process reads the file again: the store opens with it.
    engine = open_engine()
    try:
        ((_path, mount),) = engine.mounts.listing()
        ufs = engine.mounts.connector(mount)
        ufs.write("hello.txt", io.BytesIO(b"hi"))
    finally:
        engine.close(checkpoint=False)
    raw = s3_client(s3_server.endpoint).get_object(Bucket=bucket, Key="train/hello.txt")
    assert raw["Body"].read() == b"hi"

"""Secrets of an S3 mount never in an argv, an environment or the home: mounted with the secret
key from a file of mode 0600, standard input, the command's AWS_* variables, a profile, or (with
a warning) the command line, the daemon and its helper processes show it in neither
/proc/PID/cmdline nor /proc/PID/environ, no file of the home or its MEM tier holds it after
writes and checkpoints, and the mount works. The moto server here checks request signatures, so
a mount that works used the secret it was given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from cli.bench.s3server import S3Server, start_s3_server
from fuse.mountinfo import alive, daemon_pid, served
from tests.cli.shoal_cli import ROOT, env, shoal
from tests.cli.test_home_modes import mem_tier, tree
from tests.homes import track


@dataclass
class SignedS3:
    """A moto server that refuses requests not signed with a key it issued."""

    server: S3Server
    access_key: str
    secret_key: str

    def client(self, secret: str | None = None) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.server.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=secret or self.secret_key,
        )  # fmt: skip


@pytest.fixture(scope="module")
def signed_s3() -> Iterator[SignedS3]:
    # The first three requests (the user, its key, its policy) need no signature; every later
    # one must be signed with that key.
    server = start_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        iam = boto3.client(
            "iam", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
        )  # fmt: skip
        iam.create_user(UserName="trainer")
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="trainer", PolicyName="s3", PolicyDocument=json.dumps(policy))
        yield SignedS3(server, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.stop()


@dataclass
class Setup:
    base: Path
    bucket: str
    args: list[str]  # after `shoal mount`: options, the URI, the mountpoint
    env: dict[str, str]
    input: str | None = None

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def mnt(self) -> Path:
        return self.base / "mnt"


def setup(s3: SignedS3, base: Path, way: str) -> Setup:
    bucket = f"secret-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=bucket)
    (base / "mnt").mkdir()
    track(base / "home")
    opts = {"endpoint": s3.server.endpoint, "path_style": "true", "region": "us-east-1"}
    extra: list[str] = []
    environment = env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SHARED_CREDENTIALS_FILE"):
        environment.pop(name, None)
    stdin = None
    if way in ("file", "stdin", "dash", "argv"):
        opts["access_key"] = s3.access_key
    if way == "file":
        key_file = base / "secret-key"
        key_file.write_text(s3.secret_key + "\n")
        key_file.chmod(0o600)
        opts["secret_key_file"] = str(key_file)
    elif way == "stdin":
        extra.append("--secret-key-stdin")
        stdin = s3.secret_key + "\n"
    elif way == "dash":
        opts["secret_key"] = "-"
        stdin = s3.secret_key + "\n"
    elif way == "env":
        environment["AWS_ACCESS_KEY_ID"] = s3.access_key
        environment["AWS_SECRET_ACCESS_KEY"] = s3.secret_key
    elif way == "profile":
        shared = base / "aws-credentials"
        shared.write_text(
            f"[shoal]\naws_access_key_id = {s3.access_key}\n"
            f"aws_secret_access_key = {s3.secret_key}\n"
        )
        shared.chmod(0o600)
        environment["AWS_SHARED_CREDENTIALS_FILE"] = str(shared)
        opts["profile"] = "shoal"
    elif way == "argv":
        opts["secret_key"] = s3.secret_key
    args = extra + [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]
    return Setup(base, bucket, args + [f"s3://{bucket}/ds", str(base / "mnt")], environment, stdin)


def family(pid: int) -> list[int]:
    """``pid`` and every process below it (the journal's writer and scan processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def shown_by(pid: int, secret: str) -> list[str]:
    """Where ``pid`` and its descendants show ``secret`` to anyone reading /proc."""
    found = []
    for p in family(pid):
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{p}/{what}", "rb") as f:
                    if secret.encode() in f.read():
                        found.append(f"/proc/{p}/{what}")
            except OSError:
                continue
    return found


def copies_in(s: Setup, secret: str) -> list[str]:
    """Files of the home and its MEM tier holding ``secret``."""
    return [
        str(path)
        for path, st in tree(s.home, mem_tier(s.home))
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes()
    ]


def unmount(s: Setup) -> None:
    if served(str(s.mnt)) is not None:
        if shoal("umount", str(s.mnt), expect=None).returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", str(s.mnt)], check=False)


def use_the_mount(s: Setup, s3: SignedS3) -> None:
    (s.mnt / "dir").mkdir()
    (s.mnt / "dir" / "model.bin").write_bytes(b"weights" * 50_000)
    assert (s.mnt / "dir" / "model.bin").read_bytes() == b"weights" * 50_000
    shoal("journal", "checkpoint", home=s.home)  # through the daemon's admin channel


WAYS = ["file", "stdin", "dash", "env", "profile", "argv"]


@pytest.mark.parametrize("way", WAYS)
def test_a_secret_is_in_no_argv_environment_or_home(
    signed_s3: SignedS3, tmp_path: Path, way: str
) -> None:
    s = setup(signed_s3, tmp_path, way)
    secret = signed_s3.secret_key
    try:
        done = shoal("mount", *s.args, home=s.home, env=s.env, input=s.input)
        warned = "visible to every user" in done.stderr
        assert warned == (way == "argv"), done.stderr
        assert secret not in done.stderr
        pid = daemon_pid(str(s.home))
        assert pid is not None
        assert len(family(pid)) > 1  # the journal's writer process is checked too
        assert shown_by(pid, secret) == []
        use_the_mount(s, signed_s3)
        assert copies_in(s, secret) == []
    finally:
        unmount(s)
    assert copies_in(s, secret) == []  # the final checkpoint and the last log lines
    stored = signed_s3.client().get_object(Bucket=s.bucket, Key="ds/dir/model.bin")
    assert stored["Body"].read() == b"weights" * 50_000


def test_a_secret_file_others_can_read_is_refused(signed_s3: SignedS3, tmp_path: Path) -> None:
    s = setup(signed_s3, tmp_path, "file")
    key_file = tmp_path / "secret-key"
    key_file.chmod(0o644)
    refused = shoal("mount", *s.args, home=s.home, env=s.env, expect=1)
    assert f"{key_file} is mode 0644" in refused.stderr and "chmod 600" in refused.stderr
    assert not served(str(s.mnt))
    # The secret really is what signs the requests: a wrong one is refused by the store.
    key_file.write_text("not-the-secret-key\n")
    key_file.chmod(0o600)
    wrong = shoal("mount", *s.args, home=s.home, env=s.env, expect=1)
    assert "access denied" in wrong.stderr or "Signature" in wrong.stderr, wrong.stderr
    assert not served(str(s.mnt))


@pytest.mark.parametrize("way", ["env", "argv"])
def test_a_foreground_daemon_hides_the_secret_it_was_started_with(
    signed_s3: SignedS3, tmp_path: Path, way: str
) -> None:
    # `shoal mount --foreground` is the daemon itself: started with the secret in its
    # environment or its argv, it shows neither once it serves.
    s = setup(signed_s3, tmp_path, way)
    cmd = [sys.executable, "-m", "cli.main", "--home", str(s.home), "mount", "--foreground"]
    proc = subprocess.Popen(
        cmd + s.args, cwd=ROOT, env=s.env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not served(str(s.mnt)):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the foreground daemon never mounted"
            time.sleep(0.1)
        assert shown_by(proc.pid, signed_s3.secret_key) == []
        use_the_mount(s, signed_s3)
        assert copies_in(s, signed_s3.secret_key) == []
    finally:
        unmount(s)
        if proc.poll() is None and not alive(proc.pid):
            proc.wait()
        elif proc.poll() is None:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.stderr is not None
    assert (way == "argv") == ("visible to every user" in proc.stderr.read())
    assert copies_in(s, signed_s3.secret_key) == []


def test_fs_mount_through_the_daemon_reads_the_secret_where_it_is_run(
    signed_s3: SignedS3, tmp_path: Path
) -> None:
    # `shoal fs mount --secret-key-stdin` while a daemon serves the home runs in the daemon:
    # the key is read from the command's own standard input and sent over the admin socket.
    s = setup(signed_s3, tmp_path, "file")
    other = f"nested-{uuid.uuid4().hex[:10]}"
    signed_s3.client().create_bucket(Bucket=other)
    try:
        shoal("mount", *s.args, home=s.home, env=s.env)
        (s.mnt / "nested").mkdir()
        opts = {"endpoint": signed_s3.server.endpoint, "path_style": "true",
                "region": "us-east-1", "access_key": signed_s3.access_key}  # fmt: skip
        args = [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]
        shoal("fs", "mount", "/nested", f"s3://{other}/n", *args, "--secret-key-stdin",
              home=s.home, env=s.env, input=signed_s3.secret_key + "\n")  # fmt: skip
        (s.mnt / "nested" / "f.txt").write_text("through the nested mount")
        assert (s.mnt / "nested" / "f.txt").read_text() == "through the nested mount"
        pid = daemon_pid(str(s.home))
        assert pid is not None
        assert shown_by(pid, signed_s3.secret_key) == []
        # A mount recorded for later processes keeps a value in credentials (0600), nowhere else.
        assert copies_in(s, signed_s3.secret_key) == [str(s.home / "credentials")]
    finally:
        unmount(s)
    stored = signed_s3.client().get_object(Bucket=other, Key="n/f.txt")
    assert stored["Body"].read() == b"through the nested mount"

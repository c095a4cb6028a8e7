"""A new user's first commands, typed as they would be (issue 17): the one-click `fs mount`,
help that agrees with the options accepted, and a mistyped home refused rather than made."""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from pathlib import Path

from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server, s3_client
from tests.cli.shoal_cli import env, shoal
from tests.fuse.otheruser import NOBODY
from ufs.s3options import SECRET_OPTIONS, S3Options


def test_fs_mount_makes_its_mount_point_on_a_new_home(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "a.jpg").write_bytes(b"jpeg")
    # No `fs mkdir` first, and no `shoal init`: a first mount begins a home.
    shoal("fs", "mount", "/data", str(data), home=home)
    assert shoal("fs", "mounts", home=home).stdout.strip() == f"/data\t{data}\trw"
    listed = shoal("fs", "ls", "/data/train", home=home).stdout
    assert listed.split()[-1] == "a.jpg"
    # A point that exists with content is refused, naming the problem; nothing is changed.
    shoal("fs", "mkdir", "/full", home=home)
    shoal("fs", "touch", "/full/keep", home=home)
    full = shoal("fs", "mount", "/full", str(tmp_path / "other"), home=home, expect=1)
    assert "/full is not empty" in full.stderr and len(full.stderr.splitlines()) == 1
    # A refused mount leaves no mount point of its making behind; its parent is not made.
    missing = shoal("fs", "mount", "/gone", str(tmp_path / "no-such-dir"), home=home, expect=1)
    assert len(missing.stderr.splitlines()) == 1
    deeper = shoal("fs", "mount", "/no/parent", str(data), home=home, expect=1)
    assert "/no does not exist" in deeper.stderr
    names = [line.split()[-1] for line in shoal("fs", "ls", "/", home=home).stdout.splitlines()]
    assert names == ["data", "full"]


def test_the_seed_one_click_s3_mount(s3_server: S3Server, tmp_path: Path) -> None:
    # As the user typed it: a new home, no fs mkdir, an S3 bucket at /s3.
    bucket = f"seed-{uuid.uuid4().hex[:10]}"
    client = s3_client(s3_server.endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="train/a.jpg", Body=b"jpeg")
    home = tmp_path / "home"
    shoal(
        "fs", "mount", "/s3", f"s3://{bucket}/", "-o", f"endpoint={s3_server.endpoint}",
        "-o", "path_style=true", "-o", "region=us-east-1", "-o", f"access_key={ACCESS_KEY}",
        "-o", f"secret_key={SECRET_KEY}", home=home,
    )  # fmt: skip
    listed = shoal("fs", "ls", "/s3/train", home=home).stdout
    assert listed.split()[-1] == "a.jpg"


def test_help_names_only_options_that_are_accepted(tmp_path: Path) -> None:
    for command in (["mount", "--help"], ["fs", "mount", "--help"]):
        text = " ".join(shoal(*command).stdout.split())
        assert "endpoint_url" not in text
        # Every option the help shows exists: S3's, the secrets' sources, configuration keys.
        others = ("secret_key_file", "write_type", "read_type", "block_size")
        for key in re.findall(r"-o ([a-z_.]+)=", text):
            known = {f.name for f in dataclasses.fields(S3Options)} | SECRET_OPTIONS
            assert key in known or key in others or "." in key, key
    top = shoal("--help").stdout
    fs_line = next(line for line in top.splitlines() if re.match(r"\s+fs\s", line))
    assert "offline" not in fs_line and "daemon" in fs_line


def test_an_unknown_s3_option_names_the_nearest_and_lists_them(tmp_path: Path) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    refused = shoal(
        "mount", "-o", "endpoint_url=http://127.0.0.1:1", "s3://bucket/", str(mnt),
        home=home, expect=1,
    )  # fmt: skip
    (line,) = refused.stderr.strip().splitlines()
    assert "unknown S3 mount option 'endpoint_url' (did you mean 'endpoint'?)" in line, line
    assert "path_style" in line and "region" in line
    typo = shoal("fs", "mount", "/s3", "s3://bucket/", "-o", "regoin=eu", home=home, expect=1)
    assert "did you mean 'region'?" in typo.stderr
    flag = shoal("mount", "-o", "non_empty", "s3://bucket/", str(mnt), home=home, expect=2)
    assert "did you mean -o nonempty?" in flag.stderr and "allow_other" in flag.stderr


def test_an_endpoint_without_scheme_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    for argv in (
        ["mount", "-o", "endpoint=127.0.0.1:9511", "s3://bucket/", str(mnt)],
        ["fs", "mount", "/s3", "s3://bucket/", "-o", "endpoint=127.0.0.1:9511"],
    ):
        refused = shoal(*argv, home=home, expect=1)  # no traceback: shoal() checks
        (line,) = refused.stderr.strip().splitlines()
        assert "endpoint=http://127.0.0.1:9511" in line, line


def test_a_mistyped_home_is_refused_not_made(tmp_path: Path) -> None:
    typo = tmp_path / "typo"
    typed = [["fs", "ls", "/"], ["fs", "mkdir", "/x"], ["report"], ["journal", "verify"]]
    for argv in typed + [["journal", "replay"], ["fsck"]]:
        refused = shoal(*argv, env=env(SHOAL_HOME=str(typo)), expect=1)
        (line,) = refused.stderr.strip().splitlines()
        assert f"{typo} is not a Shoal home" in line and "shoal init" in line, line
        assert not typo.exists()
    refused = shoal("fs", "ls", "/", home=typo, expect=1)  # --home alike
    assert not typo.exists()
    # Made on purpose, it is used.
    made = shoal("init", env=env(SHOAL_HOME=str(typo)))
    assert "a new Shoal home" in made.stdout
    shoal("fs", "mkdir", "/x", env=env(SHOAL_HOME=str(typo)))
    again = shoal("init", home=typo)
    assert "already a Shoal home" in again.stdout
    assert shoal("fs", "ls", "/", home=typo).stdout.split()[-1] == "x"


def test_without_a_home_the_default_is_named(tmp_path: Path) -> None:
    # The default (/var/lib/shoal for root, the XDG data directory otherwise) is not made by
    # a command that only reads it.
    xdg = tmp_path / "xdg"
    refused = shoal("fs", "ls", "/", env=env(XDG_DATA_HOME=str(xdg), HOME=str(tmp_path)), expect=2)
    (line,) = refused.stderr.strip().splitlines()
    default = "/var/lib/shoal" if os.geteuid() == 0 else f"{xdg}/shoal"
    assert f"the default, {default}, is not one yet" in line, line
    assert not xdg.exists()
    # Another user's default is in its XDG data directory (paths it cannot create: nothing is
    # made, nothing of root's is reached).
    for extra, where in (
        ({"XDG_DATA_HOME": "/nonexistent-xdg"}, "/nonexistent-xdg/shoal"),
        ({"HOME": "/nonexistent-home"}, "/nonexistent-home/.local/share/shoal"),
    ):
        plain = {k: v for k, v in env(**extra).items() if k == "PYTHONPATH" or k == "PATH"}
        as_user = shoal(
            "fs", "ls", "/", env={**plain, **extra}, user=NOBODY, group=NOBODY, extra_groups=[],
            expect=2,
        )  # fmt: skip
        assert f"the default, {where}, is not one yet" in as_user.stderr, as_user.stderr

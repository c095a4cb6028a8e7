"""`shoal fs ...` and the global options, run as a subprocess."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.cli.shoal_cli import env, shoal


def test_help_documents_the_exit_codes() -> None:
    out = shoal("--help").stdout
    assert "exit codes:" in out
    for code in ("0", "1", "2", "3", "4", "5"):
        assert re.search(rf"^\s+{code}\s+\S", out, re.M), code
    assert "SHOAL_HOME" in out


def test_no_home_is_a_usage_error() -> None:
    proc = shoal("fs", "ls", "/", expect=2)
    assert "pass --home DIR or set SHOAL_HOME" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_home_from_environment_and_after_the_subcommand(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", env=env(SHOAL_HOME=str(home)))
    shoal("fs", "mkdir", "/from-env", env=env(SHOAL_HOME=str(home)))
    out = shoal("fs", "ls", "/", "--home", str(home)).stdout
    assert out.rstrip().endswith(" from-env")


def test_build_and_list_a_namespace(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "-p", "/data/train/cats", "/data/val", home=home)
    shoal("fs", "touch", "/data/train/cats/1.jpg", "data/train/cats/2.jpg", home=home)
    shoal("fs", "ln", "-s", "/data/train", "/train", home=home)

    lines = shoal("fs", "ls", "/data/train/cats", home=home).stdout.splitlines()
    assert [line.split()[-1] for line in lines] == ["1.jpg", "2.jpg"]
    mode, uid, gid, size = lines[0].split()[:4]
    assert (mode, uid, gid, size) == ("-rw-r--r--", str(os.getuid()), str(os.getgid()), "0")

    root = shoal("fs", "ls", "/", home=home).stdout.splitlines()
    assert root[0].startswith("drwxr-xr-x") and root[0].endswith(" data")
    assert root[1].startswith("lrwxrwxrwx") and root[1].endswith(" train -> /data/train")

    rec = shoal("fs", "ls", "-R", "/data", home=home).stdout
    assert "/data/train/cats:\n" in rec and rec.startswith("/data:\n")

    objs = [
        json.loads(x)
        for x in shoal("fs", "ls", "-R", "--json", "/", home=home).stdout.split("\n")
        if x
    ]
    by_path = {o["path"]: o for o in objs}
    assert set(by_path) == {
        "/data",
        "/data/train",
        "/data/train/cats",
        "/data/train/cats/1.jpg",
        "/data/train/cats/2.jpg",
        "/data/val",
        "/train",
    }
    jpg = by_path["/data/train/cats/1.jpg"]
    assert set(jpg) >= {"id", "path", "type", "mode", "uid", "gid", "size", "mtime_ns"}
    assert jpg["type"] == "file" and jpg["mode"] == 0o100644 and jpg["size"] == 0
    assert by_path["/data"]["type"] == "dir"
    assert by_path["/train"]["type"] == "symlink" and by_path["/train"]["target"] == "/data/train"


def test_stat(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "touch", "/f", home=home)
    info = json.loads(shoal("fs", "stat", "--json", "/f", home=home).stdout)
    assert info["path"] == "/f" and info["type"] == "file" and info["flags"] == ["complete"]
    text = shoal("fs", "stat", "/f", home=home).stdout
    assert re.search(r"^mode:\s+0644 \(-rw-r--r--\)$", text, re.M)
    assert re.search(rf"^id:\s+{info['id']}$", text, re.M)
    # touch on an existing file moves its mtime forward and creates nothing.
    shoal("fs", "touch", "/f", home=home)
    again = json.loads(shoal("fs", "stat", "--json", "/f", home=home).stdout)
    assert again["id"] == info["id"] and again["mtime_ns"] > info["mtime_ns"]


def test_mv_and_rm(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "-p", "/a/b", "/dst", home=home)
    shoal("fs", "touch", "/a/b/f", home=home)
    shoal("fs", "mv", "/a/b/f", "/a/g", home=home)  # rename
    shoal("fs", "mv", "/a/b", "/dst", home=home)  # into an existing directory, like mv(1)
    listing = [
        json.loads(x)["path"]
        for x in shoal("fs", "ls", "-R", "--json", "/", home=home).stdout.splitlines()
    ]
    assert sorted(listing) == ["/a", "/a/g", "/dst", "/dst/b"]

    proc = shoal("fs", "rm", "/a", home=home, expect=1)
    assert proc.stderr.strip() == "shoal: error: /a is a directory; use -R to remove it"
    shoal("fs", "rm", "/a/g", home=home)
    shoal("fs", "rm", "-R", "/dst", home=home)
    assert shoal("fs", "ls", "/", home=home).stdout.split()[-1] == "a"


def test_operation_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "/d", home=home)
    cases = [
        (("fs", "mkdir", "/d"), "/d already exists"),
        (("fs", "ls", "/nope"), "/nope does not exist"),
        (("fs", "mkdir", "/x/y"), "/x does not exist"),
        (("fs", "rm", "-R", "/"), "the root directory has no parent"),
        (("fs", "mv", "/d", "/d/inside"), "cannot move /d into itself"),
    ]
    for args, message in cases:
        proc = shoal(*args, home=home, expect=1)
        assert proc.stderr == f"shoal: error: {message}\n", args


def test_ln_needs_s(tmp_path: Path) -> None:
    proc = shoal("fs", "ln", "/t", "/l", home=tmp_path / "h", expect=2)
    assert "use `shoal fs ln -s`" in proc.stderr


def test_verbose_reports_the_open(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", home=home)  # a home is made explicitly, never by a typo
    shoal("fs", "mkdir", "/d", home=home)
    quiet = shoal("fs", "ls", "/", home=home)
    assert quiet.stderr == ""
    loud = shoal("-v", "fs", "ls", "/", home=home)
    assert re.search(
        r"^shoal: info: opened journal: checkpoint none, 1 entries replayed", loud.stderr, re.M
    )

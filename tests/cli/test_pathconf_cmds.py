"""`shoal fs pathconf set|unset|list` as a user types it, on a home no daemon serves (through
the daemon: tests/fuse/test_pathconf_mount.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.shoal_cli import shoal


def _explained(home: Path, path: str) -> dict[str, tuple[str, str]]:
    out = json.loads(shoal("fs", "pathconf", "list", "--json", path, home=home).stdout)
    return {key: (item["value"], item["source"]) for key, item in out.items()}


def test_pathconf_commands_offline(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ufs = tmp_path / "ufs"
    (ufs / "data" / "train").mkdir(parents=True)
    (ufs / "data" / "out").mkdir()
    shoal("fs", "mount", "/m", str(ufs), "-o", "write_type=CACHE_THROUGH", home=home)
    set_ = shoal(
        "fs", "pathconf", "set", "/m/data", "read_type=cache_promote", "sync_interval=15m",
        home=home,
    )  # fmt: skip
    assert set_.stdout == "/m/data: read_type=CACHE_PROMOTE sync_interval=900s\n"
    shoal("fs", "pathconf", "set", "m/data/out/", "write_type=ASYNC_THROUGH", "ttl=7d", home=home)
    listed = shoal("fs", "pathconf", "list", home=home).stdout.splitlines()
    assert listed == [
        "/m/data  read_type=CACHE_PROMOTE sync_interval=900s",
        "/m/data/out  ttl=7d write_type=ASYNC_THROUGH",
    ]
    # What applies where, and why: the deepest prefix, then the mount's option, the config.
    assert _explained(home, "/m/data/out/run1/ckpt.pt") == {
        "read_type": ("CACHE_PROMOTE", "path conf /m/data"),
        "write_type": ("ASYNC_THROUGH", "path conf /m/data/out"),
        "sync_interval": ("900", "path conf /m/data"),
        "ttl": ("604800000", "path conf /m/data/out"),
        "ttl_action": ("free", "default"),
    }
    assert _explained(home, "/m/data/train") == {
        "read_type": ("CACHE_PROMOTE", "path conf /m/data"),
        "write_type": ("CACHE_THROUGH", "mount option of /m"),
        "sync_interval": ("900", "path conf /m/data"),
        "ttl": ("-1", "none"),
        "ttl_action": ("free", "default"),
    }
    text = shoal("fs", "pathconf", "list", "/m/data/out", home=home).stdout.splitlines()
    assert text[1].split() == ["write_type", "ASYNC_THROUGH", "path", "conf", "/m/data/out"]
    assert text[3].split()[:2] == ["ttl", "7d"]
    shoal("fs", "settype", "--write", "THROUGH", "/m/data/out", home=home)
    assert _explained(home, "/m/data/out/x")["write_type"] == (
        "THROUGH",
        "fs settype on /m/data/out",
    )

    assert shoal("fs", "pathconf", "unset", "m/./data/out/", "ttl", home=home).stdout == (
        "/m/data/out: unset ttl\n"
    )
    shoal("fs", "pathconf", "unset", "/m/data", home=home)  # every key of it
    assert shoal("fs", "pathconf", "list", "--json", home=home).stdout.strip() == (
        '{"/m/data/out": {"write_type": "ASYNC_THROUGH"}}'
    )
    dump = shoal("journal", "dump", "--type", "PathConfSet", home=home).stdout.splitlines()
    assert len(dump) == 4 and 'values={"ttl":null}' in dump[2]
    assert "ok    path-confs" in shoal("fsck", home=home).stdout


def test_pathconf_commands_refuse_with_clear_errors(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", home=home)
    bad = shoal("fs", "pathconf", "set", "/d", "write_typ=THROUGH", home=home, expect=1)
    assert bad.stderr.strip() == (
        "shoal: error: unknown path conf key 'write_typ' (did you mean 'write_type'?); the keys"
        " are: read_type, write_type, sync_interval, ttl, ttl_action"
    )
    bad = shoal("fs", "pathconf", "set", "/d", "read_type=NOCACHE", home=home, expect=1)
    assert "not valid (one of CACHE, CACHE_PROMOTE, NO_CACHE); did you mean 'NO_CACHE'?" in (
        bad.stderr
    )
    bad = shoal("fs", "pathconf", "set", "/d", "ttl=soon", home=home, expect=1)
    assert "'soon' is not a duration" in bad.stderr
    bad = shoal("fs", "pathconf", "set", "/d", "ttl", home=home, expect=2)
    assert "'ttl' is not KEY=VALUE" in bad.stderr
    bad = shoal("fs", "pathconf", "set", "/d/../e", "ttl=1d", home=home, expect=1)
    assert "contains '..'" in bad.stderr
    bad = shoal("fs", "pathconf", "unset", "/d", home=home, expect=1)
    assert "no path conf at /d" in bad.stderr
    assert shoal("fs", "pathconf", "list", home=home).stdout.startswith("no path confs")
    assert shoal("journal", "dump", "--type", "PathConfSet", home=home).stdout == ""

"""Per-path defaults through a live mount: set through the daemon's admin channel with paths
inside the mountpoint, a file written below an ASYNC_THROUGH prefix is committed to the cache
with its upload pending while a sibling below a CACHE_THROUGH prefix reaches the store at
close."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli.shoal_cli import env, shoal
from tests.fuse.mounting import Mounted


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def test_pathconf_write_types_through_the_mount(any_mount: Mounted) -> None:
    store = any_mount.store  # type: ignore[attr-defined]
    mnt, no_home = any_mount.path, env()
    (mnt / "prep").mkdir()
    (mnt / "train").mkdir()
    shoal("fs", "pathconf", "set", str(mnt / "prep"), "write_type=ASYNC_THROUGH", env=no_home)
    shoal("fs", "pathconf", "set", str(mnt / "train"), "write_type=cache_through", env=no_home)
    log = (any_mount.home / "logs" / "shoal.log").read_text()
    assert "admin channel: shoal fs pathconf" in log  # ran in the daemon (the home is locked)

    listed = json.loads(
        shoal("fs", "pathconf", "list", "--json", str(mnt / "prep" / "x"), env=no_home).stdout
    )
    assert listed["write_type"] == {"value": "ASYNC_THROUGH", "source": "path conf /prep"}
    bad = shoal("fs", "pathconf", "set", str(mnt / "x"), "ttl_acton=free", env=no_home, expect=1)
    assert "unknown path conf key 'ttl_acton' (did you mean 'ttl_action'?)" in bad.stderr
    shoal("fs", "pathconf", "set", str(mnt / "x"), "ttl=1h", env=no_home)
    assert shoal("fs", "pathconf", "unset", str(mnt / "x"), env=no_home).stdout == "/x: unset ttl\n"
    # No path names the mount: the home does (served by the daemon, so it runs there too).
    assert shoal("fs", "pathconf", "list", home=any_mount.home).stdout.splitlines() == [
        "/prep  write_type=ASYNC_THROUGH",
        "/train  write_type=CACHE_THROUGH",
    ]

    shard, ckpt = os.urandom(300_000), os.urandom(200_000)
    _write(mnt / "prep" / "shard0.bin", shard)
    _write(mnt / "train" / "ckpt.bin", ckpt)
    assert store.get("train/ckpt.bin") == ckpt  # CACHE_THROUGH: in the store at close
    assert (mnt / "prep" / "shard0.bin").read_bytes() == shard
    any_mount.umount()

    dump = shoal("journal", "dump", "--format", "jsonl", home=any_mount.home).stdout
    entries = [json.loads(line) for line in dump.splitlines()]
    ids = {e["name"]: e["id"] for e in entries if e["type"] == "CreateFile"}
    persisted_async = {
        e["id"] for e in entries if e["type"] == "ContentCommitted" and e["persist"]
    } | {e["id"] for e in entries if e["type"] == "PersistRequested"}
    written_through = {
        e["id"] for e in entries if e["type"] == "UfsFingerprint" and e["new_content"]
    }
    assert ids["shard0.bin"] in persisted_async and ids["shard0.bin"] not in written_through
    assert ids["ckpt.bin"] in written_through and ids["ckpt.bin"] not in persisted_async
    cached = {e["file"] for e in entries if e["type"] == "BlockCached"}
    assert ids["ckpt.bin"] in cached  # CACHE_THROUGH caches, THROUGH (the default) would not

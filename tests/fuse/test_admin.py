"""The daemon's admin channel: commands run online, on the daemon's engine."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.cli.shoal_cli import env, shoal
from tests.fuse.mounting import Mounted, mounted


def test_commands_run_through_the_daemon(local_mount: Mounted) -> None:
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    (ufs / "train").mkdir()
    for i in range(5):
        (ufs / "train" / f"img{i}.jpg").write_bytes(os.urandom(50_000))
    sock = local_mount.home / "admin.sock"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    home = local_mount.home

    # A path inside the mountpoint names the file in the mount; its home is found from it.
    no_home = env()
    loaded = shoal("fs", "load", "-R", str(local_mount.path / "train"), env=no_home)
    assert "5 file(s) loaded (250,000 bytes)" in loaded.stdout
    report = json.loads(shoal("report", "--json", home=home).stdout)
    assert sum(t["blocks"] for t in report["tiers"]) == 5
    assert report["ufs_bytes_read"] == 250_000
    for i in range(5):  # served from the cache, through the mount
        (local_mount.path / "train" / f"img{i}.jpg").read_bytes()
    after = json.loads(shoal("report", "--json", home=home).stdout)
    assert after["ufs_bytes_read"] == 250_000 and after["cache_hits"] >= 5

    checkpoint = shoal("journal", "checkpoint", home=home)
    assert "wrote checkpoint" in checkpoint.stdout
    shoal("fs", "mkdir", "/made-online", home=home)
    assert (local_mount.path / "made-online").is_dir()
    listing = shoal("fs", "ls", str(local_mount.path / "train"), env=no_home)
    assert len(listing.stdout.splitlines()) == 5

    # Commands that need the home to themselves say who holds it.
    busy = shoal("fsck", home=home, expect=4)
    assert "in use by process" in busy.stderr
    failed = shoal("fs", "rm", "/no-such-file", home=home, expect=1)
    assert "does not exist" in failed.stderr


def test_changes_made_outside_the_mount_reach_the_kernel(local_mount: Mounted) -> None:
    """Names, attributes and pages are cached by the kernel for long timeouts; a sync that
    finds new content, or a command through the daemon, must drop them."""
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    (ufs / "data.txt").write_bytes(b"version one")
    (ufs / "gone.txt").write_bytes(b"soon removed")
    mnt, home = local_mount.path, local_mount.home
    assert (mnt / "data.txt").read_bytes() == b"version one"  # pages and attributes cached
    assert (mnt / "gone.txt").exists()
    (ufs / "data.txt").write_bytes(b"version two, longer")
    shoal("fs", "sync", "/", home=home)
    assert (mnt / "data.txt").read_bytes() == b"version two, longer"
    shoal("fs", "rm", str(mnt / "gone.txt"), env=env())
    assert not (mnt / "gone.txt").exists()
    assert sorted(os.listdir(mnt)) == ["data.txt"]


def test_prometheus_metrics(tmp_path: Path) -> None:
    import urllib.request

    from cli.bench.s3server import free_port
    from tests.ufs.stores import LocalStore

    store = LocalStore(tmp_path / "ufs")
    (store.root / "f.bin").write_bytes(os.urandom(300_000))
    port = free_port()
    with mounted(store, tmp_path, f"metrics.port={port}") as m:
        (m.path / "f.bin").read_bytes()
        (m.path / "new.txt").write_text("x")
        with open(m.path / "new.txt", "rb") as f:  # a second handle: served from the cache
            f.read()
        try:
            os.stat(m.path / "missing")
        except FileNotFoundError:
            pass
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        samples = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        assert samples['shoal_fuse_requests_total{op="read"}'] >= 1
        assert samples['shoal_fuse_errors_total{errno="ENOENT",op="lookup"}'] >= 1
        assert samples['shoal_fuse_request_seconds_count{op="create"}'] == 1
        assert samples['shoal_ufs_requests_total{op="read"}'] >= 1
        assert samples['shoal_ufs_requests_total{op="write"}'] == 1
        assert samples["shoal_ufs_read_bytes_total"] >= 300_000
        assert samples["shoal_cache_misses_total"] >= 1
        assert samples['shoal_cache_blocks{tier="MEM"}'] >= 1
        assert samples["shoal_journal_entries_total"] > 0
        assert samples["shoal_journal_durable_wait_seconds_count"] > 0
        assert samples["shoal_pending_persists"] == 0


def test_paths_in_the_mount_translate(local_mount: Mounted) -> None:
    (local_mount.path / ".hidden").mkdir()
    (local_mount.path / ".hidden" / "f").write_text("x")
    out = shoal("fs", "stat", str(local_mount.path / ".hidden"), env=env()).stdout
    assert "path:    /.hidden" in out and "type:    dir" in out
    root = shoal("fs", "ls", str(local_mount.path), env=env()).stdout
    assert ".hidden" in root

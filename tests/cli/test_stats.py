"""`shoal stats MOUNTPOINT`: a live per-second view of a mount's daemon, through a real mount
(issue 17), as a script reads it (--json) and as a person does (columns under a header)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cli.shoal_cli import ROOT, env, shoal
from tests.cli.terminal import shoal_on_terminal
from tests.fuse.mounting import Mounted, mounted
from tests.ufs.stores import LocalStore, Store


@pytest.fixture
def stats_mount(tmp_path: Path) -> Iterator[Mounted]:
    """A local store of 12 files of 200 KiB, mounted."""
    store = LocalStore(tmp_path / "ufs")
    for i in range(12):
        store.put(f"img{i:02d}.bin", os.urandom(200 << 10))
    with mounted(store, tmp_path) as m:
        yield m


def _read_all(folder: Path) -> None:
    """Every file read whole, then its pages dropped from the kernel's page cache, so the next
    pass reaches the daemon again (a warm pass would be the kernel's, not Shoal's)."""
    for name in sorted(os.listdir(folder)):
        fd = os.open(folder / name, os.O_RDONLY)
        try:
            while os.read(fd, 1 << 20):
                pass
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@contextmanager
def busy(work: Callable[[], None]) -> Iterator[None]:
    """``work()`` repeated in a thread until the block ends (at least once before it starts)."""
    stop = threading.Event()
    work()

    def loop() -> None:
        while not stop.is_set():
            work()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_stats_json_counts_fuse_reads_and_cache_hits_while_a_reader_reads(
    stats_mount: Mounted,
) -> None:
    with busy(lambda: _read_all(stats_mount.path)):  # the first pass caches, the rest hit
        out = shoal(
            "stats", str(stats_mount.path), "--count", "2", "--interval", "0.2", "--json"
        ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2, out
    for figures in lines:
        assert figures["mountpoint"] == str(stats_mount.path)
        assert 0.1 < figures["interval_s"] < 5
        assert figures["ops"]["read"]["count"] > 0, figures
        assert figures["ops"]["open"]["count"] > 0, figures
        assert figures["ops"]["read"]["avg_latency_us"] > 0
        assert figures["fuse_read_bytes"] > 0 and figures["cache_hits"] > 0, figures
        assert figures["fuse_ops"] >= figures["ops"]["read"]["count"]
        assert figures["per_s"]["cache_hits"] == pytest.approx(
            figures["cache_hits"] / figures["interval_s"]
        )
        assert 0 < figures["hit_ratio"] <= 1
        assert figures["fuse_write_bytes"] == 0 and figures["ufs_written_bytes"] == 0


def test_stats_json_counts_writes_uploads_and_journal_appends(stats_mount: Mounted) -> None:
    made = iter(range(1_000_000))

    def write_one() -> None:  # THROUGH, the default write type: the store has it at close
        (stats_mount.path / f"new{next(made)}.bin").write_bytes(b"w" * (64 << 10))

    with busy(write_one):
        out = shoal("stats", str(stats_mount.path), "--count", "1", "--interval", "0.3", "--json")
    figures = json.loads(out.stdout)
    assert figures["ops"]["create"]["count"] > 0 and figures["ops"]["write"]["count"] > 0
    assert figures["fuse_write_bytes"] >= 64 << 10, figures
    assert figures["ufs_written_bytes"] >= 64 << 10, figures
    assert figures["journal_appends"] > 0 and figures["journal_fsyncs"] > 0, figures


def test_stats_text_prints_a_header_and_a_line_per_interval(stats_mount: Mounted) -> None:
    with busy(lambda: _read_all(stats_mount.path)):
        out = shoal("stats", str(stats_mount.path), "--count", "3", "--interval", "0.1").stdout
    lines = out.splitlines()
    assert len(lines) == 5, out  # into a pipe: the header once
    assert "fuse ops/s" in lines[0] and "cache blocks/s" in lines[0] and "journal" in lines[0]
    names = lines[1].split()
    assert names[:6] == ["lookup", "getattr", "open", "read", "write", "create"], lines[1]
    for line in lines[2:]:
        cells = line.split()
        assert len(cells) == len(names), line
        assert cells[names.index("read")] != "0", line  # reads per second
        assert cells[names.index("read", 4)][-1] in "KMG", line  # FUSE bytes: human units


def test_stats_repeats_its_header_every_20_lines_on_a_terminal(stats_mount: Mounted) -> None:
    code, screen = shoal_on_terminal(
        "stats", str(stats_mount.path), "--count", "21", "--interval", "0.02"
    )
    assert code == 0, screen
    lines = screen.splitlines()
    assert sum("fuse ops/s" in line for line in lines) == 2, screen
    assert len(lines) == 2 * 2 + 21, screen
    # 100 columns: the groups that fit, none wrapped; the least needed ones left out
    assert max(len(line) for line in lines) <= 100, screen
    assert "cache blocks/s" in lines[0] and "background" not in screen, lines[0]


def test_stats_refuses_a_directory_no_shoal_daemon_serves(tmp_path: Path) -> None:
    done = shoal("stats", str(tmp_path), "--count", "1", expect=1)
    assert done.stderr.strip() == (
        f"shoal: error: {tmp_path} is not a Shoal mount (no fuse.shoal mount there)"
    )
    assert done.stdout == ""
    bad = shoal("stats", str(tmp_path), "--interval", "0", expect=2)
    assert "--interval must be a positive number of seconds" in bad.stderr


def test_stats_says_when_the_mounts_daemon_is_gone(stats_mount: Mounted) -> None:
    stats_mount.kill9()
    done = shoal("stats", str(stats_mount.path), "--count", "1", expect=1)
    assert "its daemon is gone" in done.stderr and str(stats_mount.path) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_stats_ends_with_an_error_when_the_daemon_dies_under_it(stats_mount: Mounted) -> None:
    view = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "stats", str(stats_mount.path), "--interval", "0.1"],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert view.stdout is not None
        for _ in range(3):  # the header, then a line: the view is live
            assert view.stdout.readline()
        stats_mount.kill9()
        out, err = view.communicate(timeout=60)
    finally:
        if view.poll() is None:
            view.kill()
            view.wait()
    assert view.returncode == 1, (out, err)
    assert err == f"shoal: error: {stats_mount.path}: its daemon stopped\n"


def test_stats_counts_the_misses_and_store_reads_of_a_cold_pass(
    store: Store, tmp_path: Path
) -> None:
    for i in range(8):
        store.put(f"cold/f{i}.bin", os.urandom(300 << 10))
    with mounted(store, tmp_path) as m:
        view = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "stats", str(m.path), "--interval", "0.2", "--json"],
            cwd=ROOT,
            env=env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert view.stdout is not None
            assert json.loads(view.stdout.readline())  # the view is live before the pass
            read = sum(len((m.path / f"cold/f{i}.bin").read_bytes()) for i in range(8))
            done = time.time()
            lines: list[dict[str, Any]] = []  # every interval up to one that ends after the pass
            while not lines or lines[-1]["time"] <= done:
                lines.append(json.loads(view.stdout.readline()))
        finally:
            view.kill()
            view.wait()
    total = {key: sum(f[key] for f in lines) for key in lines[0] if isinstance(lines[0][key], int)}
    assert total["cache_misses"] >= 8, lines  # a block a file, fetched from the store
    assert total["ufs_read_bytes"] > 0 and total["fuse_read_bytes"] >= read == 8 * 300 << 10
    assert sum(f["ops"]["lookup"]["count"] for f in lines) >= 9  # cold/, then each file
    assert sum(f["ops"]["open"]["count"] for f in lines) >= 8


def test_stats_figures_of_an_interval_are_differences_per_second() -> None:
    from cli.stats_view import interval  # here: the module is new with `shoal stats`

    op = {"calls": 10, "errors": 1, "ns": 50_000, "bytes": 4096, "timed": 2}
    prev = {"time": 10.0, "ops": {"read": op}, "cache_hits": 5, "cache_misses": 5}
    later = {"calls": 30, "errors": 1, "ns": 150_000, "bytes": 12288, "timed": 4}
    cur = {"time": 12.0, "ops": {"read": later}, "cache_hits": 35, "cache_misses": 15}
    got = interval(prev, cur, "/mnt")
    assert got["ops"]["read"] == {
        "count": 20, "errors": 0, "bytes": 8192, "per_s": 10.0, "avg_latency_us": 50.0,
        "timed": 2,
    }  # fmt: skip
    assert got["fuse_read_bytes"] == 8192 and got["per_s"]["fuse_read_bytes"] == 4096
    assert got["cache_hits"] == 30 and got["hit_ratio"] == 0.75
    assert got["journal_appends"] == 0  # a total the daemon did not report counts nothing
    quiet = interval(cur, {**cur, "time": 13.0}, "/mnt")
    assert quiet["hit_ratio"] is None and quiet["fuse_avg_latency_us"] is None

"""`shoal fs du|count|checksum` as a user types them, on a home no daemon serves, over a local
directory and over S3 (their daemon-side runs: tests/fuse/test_usage_online.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.cli.shoal_cli import shoal
from tests.ufs.stores import Store


def _mounted_home(store: Store, tmp_path: Path) -> tuple[Path, bytes]:
    """A home with ``store`` mounted at /m, holding a/b/x.bin (3 MiB and a bit) and a/y.txt."""
    home = tmp_path / "h"
    data = os.urandom(3 * (1 << 20) + 777)
    store.put("a/b/x.bin", data)
    store.put("a/y.txt", b"hi\n")
    options = [arg for key, value in store.options.items() for arg in ("-o", f"{key}={value}")]
    shoal("fs", "mount", "/m", store.uri, *options, home=home)
    return home, data


def _du_rows(text: str) -> dict[str, tuple[str, str]]:
    """Path -> (size, cached as `N (P%)`) of `fs du`'s lines below its header."""
    lines = text.splitlines()
    assert lines[0].split() == ["File", "Size", "In", "Shoal", "Path"]
    out = {}
    for line in lines[1:]:
        size, cached, share, path = line.split()
        out[path] = (size, f"{cached} {share}")
    return out


def test_du_count_checksum_offline(store: Store, tmp_path: Path) -> None:
    home, data = _mounted_home(store, tmp_path)
    size = str(len(data))
    assert _du_rows(shoal("fs", "du", "/m", home=home).stdout) == {
        "/m/a/b/x.bin": (size, "0 (0%)"),
        "/m/a/y.txt": ("3", "0 (0%)"),
    }
    count = shoal("fs", "count", "/m", home=home).stdout.splitlines()
    assert count[0].split() == ["File", "Count", "Folder", "Count", "Folder", "Size"]
    assert count[1].split() == ["2", "3", str(len(data) + 3)]  # /m, /m/a, /m/a/b

    checksum = shoal("fs", "checksum", "/m/a/b/x.bin", home=home).stdout
    assert checksum == f"md5sum: {hashlib.md5(data).hexdigest()}\n"
    # Read through the cache: now it is all in Shoal.
    after = _du_rows(shoal("fs", "du", "/m", home=home).stdout)
    assert after["/m/a/b/x.bin"] == (size, f"{size} (100%)")
    summary = shoal("fs", "du", "-s", "-h", "/m", home=home).stdout.splitlines()
    assert summary[1].split() == ["3.0", "MiB", "3.0", "MiB", "(99%)", "/m"]


def test_du_and_checksum_refuse_what_they_cannot_measure(tmp_path: Path) -> None:
    home = tmp_path / "h"
    shoal("init", home=home)
    shoal("fs", "mkdir", "-p", "/d/e", home=home)
    refused = shoal("fs", "checksum", "/d", home=home, expect=1).stderr
    assert refused == "shoal: error: /d is a directory: checksum takes a file\n"
    missing = shoal("fs", "du", "/nope", home=home, expect=1).stderr
    assert "/nope" in missing and len(missing.splitlines()) == 1
    assert shoal("fs", "count", "-h", "/", home=home).stdout.splitlines()[1].split() == [
        "0", "3", "0", "B",
    ]  # fmt: skip
    assert "--human-readable" in shoal("fs", "du", "--help").stdout

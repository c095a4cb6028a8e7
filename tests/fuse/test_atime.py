"""Access times through a real mount, over a local UFS and over S3 (moto over HTTP): an
explicit atime (touch -a, utimensat) is kept apart from mtime and survives restarts, and a
read moves it as relatime says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted
from tests.fuse.otheruser import NOBODY, nobody_says
from tests.ufs.stores import LocalStore

DAY_NS = 24 * 3600 * 10**9


def test_explicit_atime_is_kept_and_survives_restarts(any_mount: Mounted) -> None:
    f = any_mount.path / "file"
    f.write_bytes(b"data")
    mtime = os.stat(f).st_mtime_ns
    subprocess.run(["touch", "-a", "-d", "2001-02-03 04:05:06 UTC", str(f)], check=True)
    wanted = 981173106 * 10**9
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (wanted, mtime)
    os.utime(any_mount.path, ns=(wanted + 1, wanted + 2))  # a directory too
    any_mount.umount()  # a checkpoint
    any_mount.mount()
    assert (os.stat(f).st_atime_ns, os.stat(f).st_mtime_ns) == (wanted, mtime)
    os.utime(f, ns=(wanted + 5, mtime))
    any_mount.kill9()  # replayed from the log
    any_mount.mount()
    assert (os.stat(f).st_atime_ns, os.stat(f).st_mtime_ns) == (wanted + 5, mtime)
    assert os.stat(any_mount.path).st_atime_ns == wanted + 1
    any_mount.umount()
    assert "clean" in shoal("fsck", home=any_mount.home).stdout


def test_a_read_moves_the_access_time_as_relatime_says(any_mount: Mounted) -> None:
    f = any_mount.path / "file"
    f.write_bytes(b"data" * 1000)
    before = os.stat(f)
    assert before.st_atime_ns <= before.st_mtime_ns  # never read: not after the last write
    assert f.read_bytes() == b"data" * 1000
    first = os.stat(f).st_atime_ns
    assert first > before.st_mtime_ns, "the first read after a write did not move atime"
    assert f.read_bytes() == b"data" * 1000
    assert os.stat(f).st_atime_ns == first, "relatime: a second read within a day moved it"
    # An access time set before the last change moves at the next read.
    os.utime(f, ns=(before.st_mtime_ns - DAY_NS, before.st_mtime_ns))
    with open(f, "rb") as handle:
        handle.read(10)
    moved = os.stat(f).st_atime_ns
    assert moved >= first
    any_mount.umount()  # the update was never waited for; a clean stop keeps it
    any_mount.mount()
    assert os.stat(f).st_atime_ns == moved


def test_noatime_reads_leave_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    home = tmp_path / "home"
    home.mkdir()
    (home / "shoal.toml").write_text("[fuse]\nrelatime = false\n")
    m = Mounted(home, store.uri, tmp_path / "mnt", store.options)
    m.mount()
    try:
        f = m.path / "file"
        f.write_bytes(b"data")
        before = os.stat(f)
        assert f.read_bytes() == b"data"
        assert f.read_bytes() == b"data"  # the page cache kept: the open path too
        assert os.stat(f).st_atime_ns == before.st_atime_ns
        os.utime(f, ns=(5, before.st_mtime_ns))  # explicit times still hold
        assert os.stat(f).st_atime_ns == 5
    finally:
        m.teardown()


def test_access_times_as_another_user(shared_any_mount: Mounted) -> None:
    """Through an allow_other mount, user nobody's read of root's file moves its access time;
    nobody sets explicit times on its own file only, and "now" on a file it may write."""
    pub = shared_any_mount.path / "pub"
    for name, mode in (("readable", 0o644), ("writable", 0o666)):
        (pub / name).write_bytes(b"root's")
        os.chmod(pub / name, mode)
    written = os.stat(pub / "readable").st_mtime_ns
    code = (
        f"d = {str(pub)!r}\n"
        "open(d + '/readable').read()\n"
        "open(d + '/mine', 'w').write('mine')\n"
        "os.utime(d + '/mine', ns=(1_000_000_000_123, 2_000_000_000_456))\n"
        "st = os.stat(d + '/mine')\n"
        "print(st.st_atime_ns, st.st_mtime_ns)\n"
        "attempt('explicit on writable', lambda: os.utime(d + '/writable', ns=(5, 5)))\n"
        "attempt('now on writable', lambda: os.utime(d + '/writable'))\n"
        "attempt('now on readable', lambda: os.utime(d + '/readable'))\n"
        "attempt('atime only on mine', lambda: os.utime(d + '/mine', ns=(7, st.st_mtime_ns)))\n"
    )
    assert nobody_says(code) == [
        "1000000000123 2000000000456",
        "explicit on writable EPERM",
        "now on writable allowed",
        "now on readable EACCES",
        "atime only on mine allowed",
    ]
    read = os.stat(pub / "readable")
    assert read.st_atime_ns > written and read.st_mtime_ns == written
    assert os.stat(pub / "writable").st_mtime_ns > written
    shared_any_mount.umount()
    shared_any_mount.mount("allow_other")
    mine = os.stat(pub / "mine")
    assert (mine.st_atime_ns, mine.st_mtime_ns, mine.st_uid) == (7, 2_000_000_000_456, NOBODY)
    assert os.stat(pub / "readable").st_atime_ns == read.st_atime_ns

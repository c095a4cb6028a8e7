"""The durability contract through a real mount (docs/operations.md, "Durability").

With journal.durability "every_op" and with the default "commit_interval": a `tar x` that ended
with `sync` loses nothing to a kill -9; a kill -9 in the middle of one leaves a prefix of what
tar created, in the order it created it; and fsync of a directory (or a file) makes its entries
durable, shown by a power loss emulated from what the daemon says it synced. Each kill is of
the daemon and its journal writer process together (a whole service killed): what the daemon
had only handed to the writer is lost with it.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from cli.bench.s3server import free_port
from fuse.mountinfo import alive
from journal.format import Record, iter_records
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted, mounted
from tests.ufs.stores import LocalStore

DURABILITIES = ["every_op", "commit_interval"]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def kill_service(m: Mounted) -> None:
    """SIGKILL to the daemon and to the processes it started (its journal writer)."""
    pid = m.pid()
    assert pid is not None, "no daemon to kill"
    doomed = [pid, *_children(pid)]
    for p in doomed:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(alive(p) for p in doomed) and time.monotonic() < deadline:
        time.sleep(0.02)


def make_archive(base: Path, dirs: int, per_dir: int, seed: int) -> tuple[Path, list[str]]:
    """A tar of ``dirs`` directories of ``per_dir`` small files; its members in tar's order."""
    rng = random.Random(seed)
    src = base / "src"
    for d in range(dirs):
        folder = src / f"d{d:02d}"
        folder.mkdir(parents=True)
        for f in range(per_dir):
            (folder / f"f{f:04d}").write_bytes(rng.randbytes(rng.randrange(1, 2500)))
    archive = base / "archive.tar"
    subprocess.run(["tar", "cf", str(archive), "-C", str(src), "."], check=True)
    listing = subprocess.run(["tar", "tf", str(archive)], check=True, capture_output=True)
    members = [m.removeprefix("./").rstrip("/") for m in listing.stdout.decode().splitlines()]
    return archive, [m for m in members if m and m != "."]


def _mount(tmp_path: Path, durability: str, *extra: str) -> AbstractContextManager[Mounted]:
    store = LocalStore(tmp_path / "ufs")
    return mounted(
        store, tmp_path, "write_type=ASYNC_THROUGH", f"journal.durability={durability}", *extra
    )


@pytest.mark.parametrize("durability", DURABILITIES)
def test_tar_x_ended_with_sync_loses_nothing_to_kill9(tmp_path: Path, durability: str) -> None:
    archive, members = make_archive(tmp_path, 6, 50, seed=20)
    src = tmp_path / "src"
    with _mount(tmp_path, durability) as m:
        subprocess.run(["tar", "xf", str(archive), "-C", str(m.path)], check=True)
        subprocess.run(["sync"], check=True)
        kill_service(m)
        m.mount("write_type=ASYNC_THROUGH", f"journal.durability={durability}")
        for name in members:
            there, want = m.path / name, src / name
            if want.is_dir():
                assert there.is_dir(), name
            else:
                assert there.read_bytes() == want.read_bytes(), name
                assert there.stat().st_mode == want.stat().st_mode, name
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout


def _entries(folder: Path) -> int:
    try:
        return len(os.listdir(folder))
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("durability", DURABILITIES)
def test_kill9_in_the_middle_of_tar_x_leaves_a_prefix(tmp_path: Path, durability: str) -> None:
    archive, members = make_archive(tmp_path, 20, 150, seed=21)
    src = tmp_path / "src"
    with _mount(tmp_path, durability) as m:
        tar_errors = tmp_path / "tar.err"  # after the kill tar's complaints are expected
        tar = subprocess.Popen(
            ["tar", "xf", str(archive), "-C", str(m.path)], stderr=tar_errors.open("wb")
        )
        # Killed once tar is well under way: a few hundred of its members made.
        first = m.path / members[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _entries(first) < 100:
            time.sleep(0.05)
        kill_service(m)
        assert tar.poll() is None, (
            f"tar ended ({tar.returncode}) before the kill: {tar_errors.read_text()[-2000:]}"
        )
        tar.kill()
        tar.wait()
        m.mount("write_type=ASYNC_THROUGH", f"journal.durability={durability}")
        present = [os.path.lexists(m.path / name) for name in members]
        made = present.index(False) if False in present else len(present)
        assert made >= 100, "less survived than was made before the kill"
        later = [name for name, p in zip(members[made:], present[made:], strict=True) if p]
        assert not later, f"{members[made]} is missing but later members are there: {later[:5]}"
        # Each file before the last one made was closed before tar created the next: whole.
        for name in members[: made - 1]:
            if not (src / name).is_dir():
                assert (m.path / name).read_bytes() == (src / name).read_bytes(), name
        last = members[made - 1]
        if not (src / last).is_dir():  # its close may have been cut: empty or whole
            assert (m.path / last).read_bytes() in (b"", (src / last).read_bytes()), last
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout


def _journal_figures(port: int) -> tuple[int, int]:
    """(entries appended, entries synced) as the daemon's metrics say."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    appended = re.search(r"^shoal_journal_entries_total (\S+)$", text, re.M)
    synced = re.search(r"^shoal_journal_durable_entries_total (\S+)$", text, re.M)
    assert appended and synced, text
    return int(float(appended[1])), int(float(synced[1]))


def _lose_unsynced(home: Path, durable: int) -> int:
    """A power loss that kept exactly the synced entries: every record after ``durable``
    zeroed (as the preallocated end of a segment reads); how many records that lost."""
    lost = 0
    for segment in sorted((home / "journal").glob("log-*.seg")):
        first = int(segment.name[4:-4])
        data = bytearray(segment.read_bytes())
        records = [r for r in iter_records(bytes(data), first) if isinstance(r, Record)]
        gone = [r for r in records if r.seq > durable]
        if gone:
            data[gone[0].offset :] = bytes(len(data) - gone[0].offset)
            segment.write_bytes(bytes(data))
            lost += len(gone)
    return lost


@pytest.mark.parametrize("how", ["fsyncdir", "fsync"])
def test_fsync_of_a_directory_or_file_makes_its_entries_durable(tmp_path: Path, how: str) -> None:
    port = free_port()
    # An interval no test outlasts: only the fsync can make the entries durable.
    extra = ("journal.commit_interval_ms=60000", f"metrics.port={port}")
    with _mount(tmp_path, "commit_interval", *extra) as m:
        folder = m.path / "d"
        folder.mkdir()
        for i in range(30):
            (folder / f"f{i}").write_bytes(b"x" * i)
        appended, synced = _journal_figures(port)
        assert synced < appended, "already durable before the fsync: the test shows nothing"
        if how == "fsyncdir":
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        else:
            fd = os.open(folder / "f29", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _appended, synced = _journal_figures(port)
        assert synced >= appended, f"{how} returned with entries {synced + 1}..{appended} unsynced"
        (m.path / "later").write_bytes(b"after the fsync")  # acknowledged, not durable
        kill_service(m)
        assert _lose_unsynced(m.home, synced), "the emulated power loss lost nothing"
        m.mount("write_type=ASYNC_THROUGH")
        assert sorted(os.listdir(folder)) == sorted(f"f{i}" for i in range(30))
        for i in range(30):
            assert (folder / f"f{i}").read_bytes() == b"x" * i
        m.umount()
        assert "clean" in shoal("fsck", home=m.home).stdout


def test_the_commit_interval_syncs_without_being_asked(tmp_path: Path) -> None:
    port = free_port()
    with _mount(tmp_path, "commit_interval", f"metrics.port={port}") as m:
        for i in range(20):
            (m.path / f"f{i}").write_bytes(b"y")
        appended, synced = _journal_figures(port)
        deadline = time.monotonic() + 30  # a bound for a loaded machine, not a speed claim
        while synced < appended and time.monotonic() < deadline:
            time.sleep(0.05)
            _, synced = _journal_figures(port)
        assert synced >= appended, "the background sync never came"

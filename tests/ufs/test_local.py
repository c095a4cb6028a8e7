"""The connector contract on a local directory, plus what only a local root can get wrong."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ufs.contract import MiB, PatternStream, UnderFSContract
from tests.ufs.stores import small_filesystem
from ufs import tempfiles
from ufs.base import UnderFS
from ufs.errors import UfsError, UfsInvalidPath, UfsNoSpace, UfsNotFound
from ufs.local import LocalUnderFS
from ufs.uri import open_ufs

ROOT = Path(__file__).resolve().parents[2]
# A process writing a file through the local connector from its stdin, which never ends.
WRITER = (
    "import sys\n"
    "from ufs.local import LocalUnderFS\n"
    "LocalUnderFS(sys.argv[1]).write(sys.argv[2], sys.stdin.buffer)\n"
)


class TestLocalUnderFS(UnderFSContract):
    @pytest.fixture
    def ufs(self, tmp_path: Path) -> Iterator[UnderFS]:
        root = tmp_path / "root"
        root.mkdir()
        yield LocalUnderFS(str(root))


def test_symlinks_never_lead_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (root / "inside.txt").write_text("inside")
    os.symlink(secret, root / "escape")
    os.symlink(tmp_path, root / "escape-dir")
    os.symlink("inside.txt", root / "alias")  # stays inside: allowed
    ufs = LocalUnderFS(str(root))
    for path in ("escape", "escape-dir/secret.txt"):
        with pytest.raises(UfsInvalidPath):
            ufs.read(path, 0, 100)
        with pytest.raises(UfsInvalidPath):
            ufs.write(path, io.BytesIO(b"overwrite"))
    assert secret.read_text() == "outside"
    assert {e.name for e in ufs.list("")} == {"inside.txt", "alias"}
    assert ufs.read("alias", 0, 100) == b"inside"


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    ufs = LocalUnderFS(str(tmp_path))
    ufs.write("f", io.BytesIO(b"old"))

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            raise OSError("source failed mid-way")

    with pytest.raises(UfsError, match="source failed mid-way"):
        ufs.write("f", Broken())  # type: ignore[arg-type]
    assert ufs.read("f", 0, 10) == b"old"
    assert [e.name for e in ufs.list("")] == ["f"]  # no temporary file left visible


def test_uris(tmp_path: Path) -> None:
    assert isinstance(open_ufs(str(tmp_path)), LocalUnderFS)
    assert open_ufs(f"file://{tmp_path}").stat("").is_dir
    with pytest.raises(UfsNotFound):
        open_ufs(str(tmp_path / "missing"))


def test_trees_deeper_than_path_max(tmp_path: Path) -> None:
    """No system call takes a path over 4096 bytes; the connector walks directory descriptors
    instead, and still never follows a symlink out of the root."""
    root = tmp_path / "root"
    root.mkdir()
    ufs = LocalUnderFS(str(root))
    deep = "/".join(["d" * 60] * 90)  # 5,490 bytes
    ufs.mkdir(deep)
    status = ufs.write(deep + "/leaf.bin", io.BytesIO(b"x" * 5000))
    assert status.size == 5000 and ufs.stat(deep + "/leaf.bin").size == 5000
    assert ufs.read(deep + "/leaf.bin", 4990, 100) == b"x" * 10
    assert [s.path.rsplit("/", 1)[1] for s in ufs.list(deep)] == ["leaf.bin"]
    ufs.write(deep + "/more/new.txt", io.BytesIO(b"parents made on the way"))
    ufs.rename(deep + "/leaf.bin", deep + "/more/moved.bin")
    assert ufs.read(deep + "/more/moved.bin", 0, 3) == b"xxx"
    fd = os.open(root, os.O_RDONLY)  # plant a symlink out of the root, deep down
    try:
        for part in deep.split("/"):
            inner = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.symlink(str(tmp_path), "escape", dir_fd=fd)
    finally:
        os.close(fd)
    (tmp_path / "secret").write_text("outside")
    with pytest.raises(UfsInvalidPath):
        ufs.read(deep + "/escape/secret", 0, 10)
    assert sorted(s.path.rsplit("/", 1)[1] for s in ufs.list(deep)) == ["more"]
    ufs.delete(deep + "/more/moved.bin")
    ufs.delete(deep + "/more/new.txt")
    ufs.rmdir(deep + "/more")
    with pytest.raises(UfsNotFound):
        ufs.stat(deep + "/more")


def test_a_users_shoal_tmp_files_are_ordinary_files(tmp_path: Path) -> None:
    """Only names of Shoal's exact form are its temporary files: a user's own files that merely
    start the same way are listed, read, and never removed."""
    root = tmp_path / "root"
    root.mkdir()
    mine = {
        ".shoal-tmp-foo": b"notes",
        ".shoal-tmp-0123456789abcdef": b"the old form",
        # Shoal's form, but the check does not match: not Shoal's either.
        ".shoal-tmp-00000000-00000000-1-1-0123456789abcdef-00000000": b"look-alike",
    }
    for name, data in mine.items():
        (root / name).write_bytes(data)
    ufs = LocalUnderFS(str(root))
    assert {e.name for e in ufs.list("")} == set(mine)
    for name, data in mine.items():
        assert ufs.read(name, 0, 100) == data
        assert ufs.stat(name).size == len(data)
    assert ufs.clean_leftovers() == 0
    assert set(os.listdir(root)) == set(mine)


def sizes_in(root: Path, folder: str) -> dict[str, int]:
    """Names and sizes of the files in directory ``folder`` below ``root``, reached by
    descriptors (it may be deeper than PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in filter(None, folder.split("/")):
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        return {name: os.stat(name, dir_fd=fd).st_size for name in os.listdir(fd)}
    finally:
        os.close(fd)


def killed_writer(root: Path, folder: str) -> str:
    """Runs a process writing a file in ``folder`` below ``root`` through the connector, kills
    it with SIGKILL once its temporary file has bytes, and returns that file's name."""
    before = set(sizes_in(root, folder))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), f"{folder}/big.bin"],
                            cwd=ROOT, stdin=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"x" * (2 * MiB))
        proc.stdin.flush()
        limit = time.monotonic() + 60  # the test's own limit; the writer is usually there at once
        while True:
            found = [n for n, size in sizes_in(root, folder).items() if n not in before and size]
            if found or time.monotonic() > limit:
                break
            time.sleep(0.02)
        assert len(found) == 1, "the writer made no temporary file"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return found[0]


def test_only_temporary_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    """A writer killed mid-write leaves its temporary file; the sweep removes it and the other
    files provably abandoned, anywhere in the tree, and leaves everything else."""
    root = tmp_path / "root"
    deep = "/".join(["n" * 60] * 70)  # deeper than PATH_MAX
    (root / "d").mkdir(parents=True)
    LocalUnderFS(str(root)).mkdir(deep)
    leftover = killed_writer(root, "d")
    deep_leftover = killed_writer(root, deep)
    writer = tempfiles.writer_of(leftover)
    assert writer is not None and writer.pid != os.getpid()
    me = tempfiles.this_writer()
    keep = {
        tempfiles.temp_name(),  # this process's: a write in flight
        tempfiles.name_for(dataclasses.replace(me, host="0badf00d"), "0" * 16),  # another host's
        # This host's, from another pid namespace of this boot (a container): mtime is now.
        tempfiles.name_for(dataclasses.replace(me, system="0badf00d"), "1" * 16),
        ".shoal-tmp-foo",  # a user's
    }
    previous_boot = tempfiles.name_for(dataclasses.replace(me, system="0badf00d"), "2" * 16)
    for name in keep:
        (root / "d" / name).write_bytes(b"kept")
    (root / "d" / previous_boot).write_bytes(b"from before the last boot")
    os.utime(root / "d" / previous_boot, ns=(0, 0))  # mtime 1970: older than any boot
    assert set(sizes_in(root, "d")) == keep | {leftover, previous_boot}
    ufs = LocalUnderFS(str(root))

    # Shoal's own temporary files are never listed, live or not; the user's file is.
    assert [e.name for e in ufs.list("d")] == [".shoal-tmp-foo"]
    found = ufs.leftovers()  # a report: nothing removed
    assert sorted(found) == sorted(
        [f"d/{leftover}", f"d/{previous_boot}", f"{deep}/{deep_leftover}"]
    )
    assert set(sizes_in(root, "d")) == keep | {leftover, previous_boot}
    assert ufs.clean_leftovers() == 3  # the killed writers' two, and the one before the boot
    assert set(sizes_in(root, "d")) == keep
    assert deep_leftover not in sizes_in(root, deep)
    assert ufs.clean_leftovers() == 0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "small") as path:
        yield path


def test_a_full_store_is_no_space_and_keeps_the_old_file(small_fs: Path) -> None:
    ufs = LocalUnderFS(str(small_fs))
    ufs.write("model.ckpt", io.BytesIO(b"old checkpoint"))
    with pytest.raises(UfsNoSpace, match="model.ckpt"):
        ufs.write("model.ckpt", PatternStream(4 * MiB))  # type: ignore[arg-type]
    assert ufs.read("model.ckpt", 0, 100) == b"old checkpoint"
    assert os.listdir(small_fs) == ["model.ckpt"]  # the temporary file went with the failure


def test_a_daemon_that_is_not_root_keeps_the_stores_owners() -> None:
    """chown needs root: run by another user the connector keeps the store's owner (its own,
    for what it makes), says so once in the log, and still gives modes."""
    base = Path(tempfile.mkdtemp(prefix="shoal-owners-"))  # a place user nobody can reach
    try:
        base.chmod(0o755)
        _not_root_keeps_owners(base / "root")
    finally:
        shutil.rmtree(base)


def _not_root_keeps_owners(root: Path) -> None:
    nobody = 65534
    root.mkdir()
    os.chown(root, nobody, nobody)
    code = textwrap.dedent(f"""
        import io, logging, sys
        sys.path.insert(0, {str(ROOT)!r})
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from ufs.base import UfsAttrs
        from ufs.local import LocalUnderFS
        ufs = LocalUnderFS({str(root)!r})
        for name in ("a", "b"):
            ufs.write(name, io.BytesIO(b"x"), UfsAttrs(0o600, 0, 0))
        ufs.mkdir("d", UfsAttrs(0o700, 0, 0))
        print(ufs.set_attrs("a", UfsAttrs(mode=0o640, uid=1000)).uid)
    """)
    python = next(p for p in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable)
                  if os.access(p, os.X_OK))  # fmt: skip
    done = subprocess.run(
        [python, "-B", "-c", code], user=nobody, group=nobody, extra_groups=[],
        capture_output=True, text=True, cwd="/", timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(nobody)]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "may not change owners" in warnings[0], done.stderr
    for name, mode in (("a", 0o640), ("b", 0o600), ("d", 0o700)):
        st = os.stat(root / name)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (nobody, nobody, mode), name

"""The fsspec client (cli/client/) against real daemons: bytes read by pread of the block files
the daemon hands over, misses through the daemon, from forked and spawned worker processes,
another user held to the files' modes, and a change through the mount seen at once."""

from __future__ import annotations

import errno
import hashlib
import mmap
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.client.filesystem import ShoalFileSystem, home_of, sockets_of
from fuse import clientwire as W
from tests.fuse import fsspec_workers
from tests.fuse.mounting import Mounted, mounted
from tests.ufs.stores import Store

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 65536
NOBODY = 65534
HANG_S = 120  # not a speed limit: a wait this long means the workers are stuck


def _dataset(store: Store) -> dict[str, bytes]:
    """Class folders of small files (empty, one byte, a block exactly, several blocks) and a
    shard of more blocks than one answer hands descriptors for."""
    rng = random.Random(16)
    files = {}
    for c in range(3):
        for i in range(8):
            size = rng.choice([0, 1, 5000, BLOCK, 110_000, 200_000])
            files[f"train/c{c}/img_{i}.jpg"] = rng.randbytes(size)
    files["shards/big.tar"] = rng.randbytes(70 * BLOCK + 123)
    for key, data in files.items():
        store.put(key, data)
    return files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _all_cached(fs: ShoalFileSystem, paths: list[str]) -> None:
    """Waits until every block of ``paths`` is handed out as a descriptor: the daemon stores
    what a miss fetched in the background, after answering it."""
    deadline = time.monotonic() + 120
    pending = list(paths)
    while pending:
        pending = [p for p in pending if not _complete(fs, p)]
        assert time.monotonic() < deadline, f"never cached: {pending[:3]}"
        if pending:
            time.sleep(0.1)


def _complete(fs: ShoalFileSystem, path: str) -> bool:
    opened = fs.conn.open(fs.namespace_path(path))
    for first in range(0, opened.count, 64):
        if first not in opened.blocks:
            fs.conn.more_blocks(opened, first)
    return opened.complete()


def _pooled(context: str, fs: ShoalFileSystem | None, shares: list[list[str]]) -> list:
    with multiprocessing.get_context(context).Pool(len(shares)) as pool:
        work = pool.starmap_async(fsspec_workers.digests, [(fs, share) for share in shares])
        return work.get(timeout=HANG_S)  # workers stuck on a mixed-up socket fail the test


def test_fsspec_client_reads_ufs_bytes_cold_and_warm_from_worker_processes(
    store: Store, tmp_path: Path
) -> None:
    files = _dataset(store)
    with mounted(store, tmp_path, f"block_size={BLOCK}") as m:
        fs = ShoalFileSystem(mountpoint=str(m.path))
        paths = [str(m.path / key) for key in sorted(files)]
        want = {str(m.path / key): _sha(data) for key, data in files.items()}
        shares = [paths[i::3] for i in range(3)]

        # Cold, in spawned workers (the file system travels pickled): every block is a miss
        # the daemon reads from the UFS.
        sizes = {str(m.path / key): len(data) for key, data in files.items()}
        for got, pid, _requests, got_sizes in _pooled("spawn", fs, shares):
            assert pid != os.getpid()
            assert got == {p: want[p] for p in got}
            assert got_sizes == {p: sizes[p] for p in got}
        _all_cached(fs, paths)

        # Warm, in workers forked from a process that used the client: they connect anew and
        # read the descriptors they inherited without asking the daemon anything; what they
        # ask, they ask on connections of their own (one shared would mix their answers).
        fsspec_workers.inherit(fs)
        for got, pid, requests, got_sizes in _pooled("fork", None, shares):
            assert pid != os.getpid()
            assert got == {p: want[p] for p in got}
            assert requests == 0
            assert got_sizes == {p: sizes[p] for p in got}
        before = fs.conn.requests
        got, _pid, requests, _sizes = fsspec_workers.digests(fs, paths)
        assert got == want
        assert requests == before  # warm: no request reached the daemon
        shard = str(m.path / "shards" / "big.tar")
        assert (
            fs.cat_file(shard, start=BLOCK - 7, end=3 * BLOCK + 5)
            == (files["shards/big.tar"][BLOCK - 7 : 3 * BLOCK + 5])
        )


def _walk(top: Path) -> list[str]:
    return sorted(os.path.join(d, f) for d, _dirs, fs in os.walk(top) for f in fs)


def test_fsspec_listing_agrees_with_the_mount(local_mount: Mounted) -> None:
    mnt = local_mount.path
    (mnt / "a" / "b").mkdir(parents=True)
    (mnt / "a" / "x.bin").write_bytes(b"x" * 1000)
    (mnt / "a" / "b" / "y.bin").write_bytes(b"")
    (mnt / "top.txt").write_bytes(b"top")
    os.chmod(mnt / "top.txt", 0o640)
    os.symlink("top.txt", mnt / "link")
    fs = ShoalFileSystem(mountpoint=str(mnt))

    assert fs.find(str(mnt)) == _walk(mnt)
    assert fs.find("a") == _walk(mnt / "a")
    assert fs.ls(str(mnt), detail=False) == sorted(str(mnt / n) for n in os.listdir(mnt))
    for path in (mnt / "top.txt", mnt / "a", mnt / "a" / "b" / "y.bin", mnt / "link"):
        info, st = fs.info(str(path)), os.lstat(path)
        assert (info["size"], info["mode"], info["uid"], info["gid"], info["ino"]) == (
            st.st_size, st.st_mode, st.st_uid, st.st_gid, st.st_ino,
        )  # fmt: skip
        assert info["mtime"] == pytest.approx(st.st_mtime_ns / 1e9)
        assert info["name"] == str(path)
    assert fs.info("a")["type"] == "directory" and fs.info("top.txt")["type"] == "file"
    assert fs.ls("top.txt", detail=False) == [str(mnt / "top.txt")]
    with pytest.raises(FileNotFoundError):
        fs.info(str(mnt / "missing"))
    with pytest.raises(IsADirectoryError):
        fs.open("a", "rb")
    with pytest.raises(PermissionError):
        fs.open("top.txt", "wb")


NOBODY_READS = """
import errno, sys
from cli.client.filesystem import ShoalFileSystem
fs = ShoalFileSystem(mountpoint=sys.argv[1])
print(fs.open("public.bin", "rb").read().decode())
for attempt in (lambda: fs.open("secret.bin", "rb").read(),
                lambda: fs.open("private/inside.bin", "rb").read(),
                lambda: fs.ls("private"), lambda: fs.info("private/inside.bin")):
    try:
        attempt()
        print("allowed")
    except PermissionError:
        print("EACCES")
print(oct(fs.info("secret.bin")["mode"] & 0o777))
"""


def test_fsspec_client_as_another_user_gets_only_what_modes_allow(local_mount: Mounted) -> None:
    mnt = local_mount.path
    (mnt / "public.bin").write_bytes(b"for everyone")
    (mnt / "secret.bin").write_bytes(b"root only")
    os.chmod(mnt / "secret.bin", 0o600)
    (mnt / "private").mkdir()
    os.chmod(mnt / "private", 0o700)
    (mnt / "private" / "inside.bin").write_bytes(b"readable, in a closed directory")
    os.chmod(mnt / "private" / "inside.bin", 0o644)
    root = ShoalFileSystem(mountpoint=str(mnt))
    paths = ["public.bin", "secret.bin", "private/inside.bin"]
    for path in paths:  # cached: the refusals hold for blocks a descriptor could reach
        root.open(path, "rb").read()
    _all_cached(root, paths)

    out = subprocess.run(
        [sys.executable, "-c", NOBODY_READS, str(mnt)], user=NOBODY, group=NOBODY,
        extra_groups=[], capture_output=True, text=True, cwd="/", timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:6] == [
        "for everyone", "EACCES", "EACCES", "EACCES", "EACCES", "0o600"
    ]  # fmt: skip


def test_fsspec_client_reads_a_file_rewritten_through_the_mount_anew(
    local_mount: Mounted,
) -> None:
    path = local_mount.path / "data.bin"
    path.write_bytes(b"first content " * 1000)
    fs = ShoalFileSystem(mountpoint=str(local_mount.path))
    assert fs.open("data.bin", "rb").read() == b"first content " * 1000
    _all_cached(fs, ["data.bin"])
    before = fs.conn.requests
    assert fs.open("data.bin", "rb").read() == b"first content " * 1000
    assert fs.conn.requests == before  # served from what the client kept

    path.write_bytes(b"second")
    assert fs.open("data.bin", "rb").read() == b"second"
    os.chmod(path, 0o600)
    assert fs.info("data.bin")["mode"] & 0o777 == 0o600


def test_fsspec_client_follows_a_remount(local_mount: Mounted) -> None:
    (local_mount.path / "f.bin").write_bytes(b"kept across daemons")
    fs = ShoalFileSystem(mountpoint=str(local_mount.path))
    assert fs.open("f.bin", "rb").read() == b"kept across daemons"
    _all_cached(fs, ["f.bin"])
    local_mount.umount()
    local_mount.mount()
    assert fs.open("f.bin", "rb").read() == b"kept across daemons"
    assert fs.ls("", detail=False) == [str(local_mount.path / "f.bin")]


def test_fsspec_epoch_cannot_be_moved_by_a_client(local_mount: Mounted) -> None:
    home = home_of(str(local_mount.path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        sock.connect(sockets_of(home)[0])
        W.send(sock, [W.HELLO])
        reply, fds = W.recv(sock, max_fds=1)
    assert reply[0] == 0 and len(fds) == 1
    try:
        with pytest.raises(PermissionError):
            mmap.mmap(fds[0], W.EPOCH_BYTES)  # shared and writable: refused by the seal
        with pytest.raises(PermissionError):
            os.pwrite(fds[0], b"\0" * 8, 0)
        with pytest.raises(OSError) as refused:
            os.ftruncate(fds[0], 0)
        assert refused.value.errno == errno.EPERM
    finally:
        os.close(fds[0])


ENTRY_POINT = """
import sys, fsspec
fs = fsspec.filesystem("shoal", mountpoint=sys.argv[1])
print(type(fs).__module__, type(fs).__name__, fs.open("e.bin", "rb").read().decode())
"""


def test_fsspec_finds_the_client_by_its_entry_point(local_mount: Mounted, tmp_path: Path) -> None:
    """fsspec finds implementations through installed distributions' entry points: a
    distribution declaring pyproject.toml's entry point is put on the path of a fresh
    interpreter (the editable install of the main tree may predate this one)."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    target = declared["fsspec.specs"]["shoal"]
    dist = tmp_path / "site" / "shoal_client_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shoal-client-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[fsspec.specs]\nshoal = {target}\n")
    (local_mount.path / "e.bin").write_bytes(b"found")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path / 'site'}"}
    out = subprocess.run(
        [sys.executable, "-c", ENTRY_POINT, str(local_mount.path)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cli.client.filesystem", "ShoalFileSystem", "found"]


def test_fsspec_file_rewritten_while_open_reads_on_from_the_new_content(
    local_mount: Mounted,
) -> None:
    path = local_mount.path / "moving.bin"
    old, new = b"o" * (3 * BLOCK), b"n" * (3 * BLOCK)
    path.write_bytes(old)
    fs = ShoalFileSystem(mountpoint=str(local_mount.path))
    with fs.open("moving.bin", "rb") as f:  # cold: no block in hand, each read asks
        assert f.read(BLOCK) == old[:BLOCK]
        path.write_bytes(new)  # the same file (inode), a new content
        assert f.read() == new[BLOCK:]
    (local_mount.path / "other.bin").write_bytes(old)
    with fs.open("other.bin", "rb") as f:
        assert f.read(BLOCK) == old[:BLOCK]
        (local_mount.path / "third.bin").write_bytes(new)
        os.rename(local_mount.path / "third.bin", local_mount.path / "other.bin")
        with pytest.raises(OSError) as stale:
            f.read()
        assert stale.value.errno == errno.ESTALE


def test_fsspec_client_imports_neither_fuse_bindings_nor_the_engine() -> None:
    """A DataLoader worker that imports the client loads no pyfuse3, trio or engine."""
    code = (
        "import sys, cli.client.filesystem\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('pyfuse3', 'trio', 'engine', 'journal', 'ufs')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_fsspec_client_serves_dataloader_workers(local_mount: Mounted, start: str) -> None:
    """torch's DataLoader with worker processes started either way (torch is not one of
    Shoal's dependencies: skipped where it is not installed)."""
    pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    rng = random.Random(6)
    want = []
    for i in range(12):
        data = rng.randbytes(rng.choice([1, 110_000, 300_000]))
        (local_mount.path / f"img_{i:02d}.jpg").write_bytes(data)
        want.append(_sha(data))
    fs = ShoalFileSystem(mountpoint=str(local_mount.path))
    dataset = fsspec_workers.FileDigests(fs, fs.find(str(local_mount.path)))
    for _epoch in range(2):  # cold, then from the cache
        loader = DataLoader(
            dataset, batch_size=None, num_workers=2, multiprocessing_context=start,
            timeout=HANG_S,
        )  # fmt: skip
        assert list(loader) == want


def test_fsspec_client_socket_refuses_malformed_requests(local_mount: Mounted) -> None:
    (local_mount.path / "ok.bin").write_bytes(b"still served")
    path = sockets_of(home_of(str(local_mount.path)))[0]
    with W.connect(path) as sock:
        for bad in (["open"], ["read", b"/ok.bin", 1, 2, -1, 5], ["nope", b"/"], [7], "open"):
            W.send(sock, bad)
            (status, message), fds = W.recv(sock)
            assert (status, fds) == (errno.EINVAL, []), message
        W.send(sock, ["stat", "/ok.bin"])  # a path travels as bytes
        assert W.recv(sock)[0][0] == errno.EINVAL
    with W.connect(path) as sock:  # a frame longer than any request: the daemon hangs up
        sock.settimeout(HANG_S)  # a daemon waiting for the rest would fail the test, not hang it
        sock.sendall(W.HEADER.pack(64 << 20))
        with pytest.raises(EOFError):
            W.recv(sock)
    fs = ShoalFileSystem(mountpoint=str(local_mount.path))
    assert fs.open("ok.bin", "rb").read() == b"still served"


def test_fsspec_client_after_the_daemon_was_killed(local_mount: Mounted) -> None:
    """kill -9 leaves the socket file behind; the next daemon of the home takes its place,
    and a client that knew the dead one connects to it and forgets what the dead one said."""
    (local_mount.path / "k.bin").write_bytes(b"before the kill")
    fs = ShoalFileSystem(mountpoint=str(local_mount.path))
    assert fs.open("k.bin", "rb").read() == b"before the kill"
    _all_cached(fs, ["k.bin"])
    socket_path = Path(sockets_of(home_of(str(local_mount.path)))[0])
    local_mount.kill9()
    assert socket_path.exists()
    local_mount.mount()
    (local_mount.path / "k.bin").write_bytes(b"after the restart")
    assert fs.open("k.bin", "rb").read() == b"after the restart"
    local_mount.kill9()
    local_mount.teardown()
    assert not socket_path.exists()  # the fixture removes what a killed daemon left

"""Special files, directory link counts and readdir's ``.`` and ``..`` through a real mount,
over a local UFS and over S3: a fifo works as a fifo between processes of this host, devices
and sockets keep their type and number, across restarts and in the store."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted
from tests.fuse.otheruser import NOBODY, nobody_says

DEVICE = os.makedev(1, 3)  # /dev/null's number


def store_mode(m: Mounted, key: str) -> int:
    """The file type bits the store holds for ``key``: a local store's own file, or the
    x-amz-meta-mode of an S3 object (which must be empty), an Azure blob's mode metadata."""
    store = m.store  # type: ignore[attr-defined]
    root = getattr(store, "root", None)
    if root is not None:
        return stat.S_IFMT(os.lstat(root / key).st_mode)
    assert store.get(key) == b""
    return stat.S_IFMT(int(store.metadata(key)["mode"]))


def store_attrs(m: Mounted, key: str) -> tuple[int, int, int, int]:
    """(type bits, permission bits, uid, gid) the store holds for ``key``: a local store's own
    file, or an S3 object's x-amz-meta-mode, -uid and -gid."""
    store = m.store  # type: ignore[attr-defined]
    root = getattr(store, "root", None)
    if root is not None:
        st = os.lstat(root / key)
        return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    meta = store.metadata(key)
    mode = int(meta["mode"])
    return stat.S_IFMT(mode), stat.S_IMODE(mode), int(meta["uid"]), int(meta["gid"])


def pass_through_fifo(path: Path, payload: bytes) -> bytes:
    """``payload`` written into fifo ``path`` by one process and read by another."""
    read = f"import sys; sys.stdout.buffer.write(open({str(path)!r}, 'rb').read())"
    write = f"import sys; open({str(path)!r}, 'wb').write(sys.stdin.buffer.read())"
    reader = subprocess.Popen([sys.executable, "-c", read], stdout=subprocess.PIPE)
    writer = subprocess.run([sys.executable, "-c", write], input=payload, timeout=60, check=True)
    out, _ = reader.communicate(timeout=60)
    assert writer.returncode == 0 and reader.returncode == 0
    return out


def test_a_fifo_works_between_processes(any_mount: Mounted) -> None:
    mnt = any_mount.path
    os.mkfifo(mnt / "pipe", 0o640)
    st = os.stat(mnt / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    payload = os.urandom(300_000)  # more than a pipe buffer: reader and writer take turns
    assert pass_through_fifo(mnt / "pipe", payload) == payload
    assert store_mode(any_mount, "pipe") == stat.S_IFIFO
    any_mount.umount()
    any_mount.mount()
    assert stat.S_ISFIFO(os.stat(mnt / "pipe").st_mode)
    assert pass_through_fifo(mnt / "pipe", b"again\n") == b"again\n"


def test_a_character_device_as_root(any_mount: Mounted) -> None:
    assert os.geteuid() == 0, "mknod of a device needs root"
    mnt = any_mount.path
    os.mknod(mnt / "null", stat.S_IFCHR | 0o600, DEVICE)
    os.mknod(mnt / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    st = os.stat(mnt / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == DEVICE
    assert stat.S_ISBLK(os.stat(mnt / "blk").st_mode)
    assert store_mode(any_mount, "null") == stat.S_IFCHR
    any_mount.kill9()  # replay, not a checkpoint, brings it back
    any_mount.teardown()
    any_mount.mount()
    st = os.stat(mnt / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == DEVICE
    assert os.stat(mnt / "blk").st_rdev == os.makedev(7, 0)


def test_a_unix_socket_binds_in_the_mount(any_mount: Mounted) -> None:
    path = any_mount.path / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        server.listen(1)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        conn, _ = server.accept()
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.close()
        client.close()
    finally:
        server.close()
    assert store_mode(any_mount, "sock") == stat.S_IFSOCK
    os.unlink(path)
    assert not path.exists()


def test_special_files_made_in_the_store_are_loaded(any_mount: Mounted) -> None:
    """A fifo another tool made in the store (a local mkfifo, an s3fs-style empty object)."""
    store = any_mount.store  # type: ignore[attr-defined]
    root = getattr(store, "root", None)
    if root is not None:
        (root / "made").mkdir()
        os.mkfifo(root / "made" / "fifo")
    else:
        store.put_with_metadata("made/fifo", b"", {"mode": str(stat.S_IFIFO | 0o644)})
        store.put("made/empty", b"")  # an empty object without a mode stays a regular file
    made = any_mount.path / "made"
    assert stat.S_ISFIFO(os.stat(made / "fifo").st_mode)
    if root is None:
        assert stat.S_ISREG(os.stat(made / "empty").st_mode)


def test_directory_link_count_counts_subdirectories(any_mount: Mounted) -> None:
    mnt = any_mount.path
    d = mnt / "d"
    d.mkdir()
    for name in ("a", "b", "c"):
        (d / name).mkdir()
    (d / "file").write_bytes(b"x")
    assert os.stat(d).st_nlink == 5
    (d / "c").rmdir()
    assert os.stat(d).st_nlink == 4
    os.rename(d / "b", mnt / "b")  # moved out: one less here, one more at the top
    assert os.stat(d).st_nlink == 3
    top = os.stat(mnt).st_nlink
    any_mount.kill9()
    any_mount.teardown()
    any_mount.mount()
    assert os.stat(d).st_nlink == 3 and os.stat(mnt).st_nlink == top
    any_mount.umount()
    any_mount.mount()
    assert os.stat(d).st_nlink == 3 and os.stat(d / "a").st_nlink == 2


def test_readdir_lists_dot_and_dotdot_first(any_mount: Mounted) -> None:
    mnt = any_mount.path
    (mnt / "top" / "sub").mkdir(parents=True)
    (mnt / "top" / "sub" / "f").write_bytes(b"x")
    out = subprocess.run(
        ["ls", "-1aif", str(mnt / "top" / "sub")], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    entries = [line.split(maxsplit=1) for line in out if line.strip()]
    assert [name for _ino, name in entries[:2]] == [".", ".."]
    assert int(entries[0][0]) == os.stat(mnt / "top" / "sub").st_ino
    assert int(entries[1][0]) == os.stat(mnt / "top").st_ino
    assert [name for _ino, name in entries[2:]] == ["f"]


def test_special_files_as_another_user(shared_any_mount: Mounted) -> None:
    """mkfifo and a socket's bind need no privilege: user nobody makes them through an
    allow_other mount, owns them, and passes bytes through them; a device it may not make."""
    mnt = shared_any_mount.path
    pipe, sock = mnt / "pub" / "pipe", mnt / "pub" / "sock"
    code = (
        f"import socket\np, s = {str(pipe)!r}, {str(sock)!r}\n"
        "os.mkfifo(p, 0o600)\n"
        "if os.fork() == 0:\n"
        "    open(p, 'wb').write(b'from nobody')\n"
        "    os._exit(0)\n"
        "print(open(p, 'rb').read().decode())\n"
        "os.wait()\n"
        "attempt('device', lambda: os.mknod(p + '-dev', 0o20600, os.makedev(1, 3)))\n"
        "server = socket.socket(socket.AF_UNIX)\n"
        "server.bind(s)\n"
        "server.listen(1)\n"
        "client = socket.socket(socket.AF_UNIX)\n"
        "client.connect(s)\n"
        "client.sendall(b'over the socket')\n"
        "print(server.accept()[0].recv(100).decode())\n"
    )
    assert nobody_says(code) == ["from nobody", "device EPERM", "over the socket"]
    assert not (mnt / "pub" / "pipe-dev").exists()
    # The store holds them as nobody's (once a local store's were the daemon's: root's, and a
    # sync showed them so), and a chmod keeps their type (once S3's became a regular file).
    nobody_says(f"os.chmod({str(sock)!r}, 0o700)\n")
    wanted = {pipe: (stat.S_IFIFO, 0o600), sock: (stat.S_IFSOCK, 0o700)}
    for path, (kind, mode) in wanted.items():
        assert store_attrs(shared_any_mount, f"pub/{path.name}") == (kind, mode, NOBODY, NOBODY)
    shared_any_mount.umount()
    shared_any_mount.mount("allow_other")
    shoal("fs", "sync", "-R", "/", home=shared_any_mount.home)
    for path, (kind, mode) in wanted.items():
        st = os.lstat(path)
        assert (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)) == (kind, mode), path
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY), path


def test_link_counts_and_dot_entries_as_another_user(shared_any_mount: Mounted) -> None:
    """A directory user nobody makes and fills counts its subdirectories, lists . and ..
    first; rmdir and rename of its subdirectories move the counts."""
    top = shared_any_mount.path / "pub" / "top"
    code = (
        f"t = {str(top)!r}\n"
        "os.mkdir(t, 0o700)\n"
        "for name in ('a', 'b', 'c'):\n"
        "    os.mkdir(t + '/' + name)\n"
        "open(t + '/f', 'w').write('x')\n"
        "print(os.stat(t).st_nlink)\n"
        "os.rmdir(t + '/c')\n"
        "os.rename(t + '/b', t + '/a/b')\n"
        "print(os.stat(t).st_nlink, os.stat(t + '/a').st_nlink)\n"
        "fd = os.open(t + '/a', os.O_RDONLY | os.O_DIRECTORY)\n"
        "print(*sorted(e.name for e in os.scandir(fd)))\n"
    )
    assert nobody_says(code) == ["5", "3 3", "b"]
    out = subprocess.run(
        ["ls", "-1aif", str(top / "a")], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out[1::2] == [".", "..", "b"]
    assert [int(ino) for ino in out[:4:2]] == [os.stat(top / "a").st_ino, os.stat(top).st_ino]
    assert os.stat(top).st_uid == NOBODY


def test_the_mount_answers_while_a_fifo_reader_waits(any_mount: Mounted) -> None:
    """A reader blocked opening a fifo waits in the kernel, not in the daemon."""
    mnt = any_mount.path
    os.mkfifo(mnt / "busy")
    done: list[bytes] = []

    def read() -> None:
        with open(mnt / "busy", "rb") as f:
            done.append(f.read())

    t = threading.Thread(target=read)
    t.start()
    (mnt / "meanwhile").write_bytes(b"the mount answers while a reader waits\n")
    with open(mnt / "busy", "wb") as f:
        f.write(b"x")
    t.join(60)
    assert done == [b"x"]
    assert (mnt / "meanwhile").read_bytes().startswith(b"the mount")

"""The wire of the client socket, shared by the daemon (fuse/clientserver.py) and the fsspec
client (cli/client/): where the socket is, and how a frame travels.

A frame is a 4-byte little-endian length and a msgpack payload. The client sends one request
(``[op, *args]``) and reads its answer before sending the next; an answer is ``[0, result]``
or ``[errno, message]``, and carries open descriptors (SCM_RIGHTS) on its first bytes when the
request asked for some. Paths and names travel as bytes (``os.fsencode``): a name that is not
UTF-8 is still a name.

The socket is not in the home, which is 0700 (its admin socket is only its owner's): the client
socket is for every user, who may connect and is then held to the files' permissions, learnt
from the connection (SO_PEERCRED). It lives under /run/shoal/ (root's, 0755) when the daemon
may make or use that directory, else in the home (then only the home's owner reaches it).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import struct
from typing import Any

import msgpack

RUN_DIR = "/run/shoal"
HOME_SOCKET = "client.sock"
HEADER = struct.Struct("<I")
MAX_FRAME = 256 << 20  # a miss's read answers at most READ_MAX bytes, well below this
MAX_REQUEST = 1 << 20  # a request is a path and a few numbers (a path may pass PATH_MAX)
READ_MAX = 16 << 20  # bytes per READ request
MAX_FDS = 253  # SCM_MAX_FD: descriptors one message may carry

# Requests: [OPEN, path] ... (their arguments and answers: fuse/clientserver.py).
HELLO, STAT, LIST, OPEN, BLOCKS, READ = "hello", "stat", "list", "open", "blocks", "read"

# The epoch: a counter the daemon raises on every change of the namespace or of a file's
# content or attributes, in a sealed memfd the client maps read-only (HELLO hands it out).
# While it has not moved, what a client learnt of a path still holds, and it reads without
# asking (cli/client/connection.py).
EPOCH = struct.Struct("<Q")
EPOCH_BYTES = 4096


def run_socket(home: str) -> str:
    """The socket under /run/shoal/ of the daemon of ``home``: named by a digest of the home's
    absolute path as the mount table shows it (a home's path may be longer than a socket
    address may be; a client may be unable to resolve links in it, so none are resolved)."""
    digest = hashlib.sha256(os.fsencode(os.path.abspath(home))).hexdigest()[:24]
    return os.path.join(RUN_DIR, f"{digest}.sock")


def home_socket(home: str) -> str:
    return os.path.join(home, HOME_SOCKET)


def trusted_run_dir() -> bool:
    """Whether /run/shoal/ is a directory that only root (or this user) can add names to: a
    socket found there is the daemon's, not one another user planted."""
    try:
        st = os.lstat(RUN_DIR)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid in (0, os.geteuid())
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def connect(path: str) -> socket.socket:
    """A connection to the socket at ``path``, however long (a socket address holds 108
    bytes: a deep home's is reached through a descriptor of its directory)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        if len(os.fsencode(path)) < 100:
            sock.connect(path)
        else:
            fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{fd}/{os.path.basename(path)}")
            finally:
                os.close(fd)
    except BaseException:
        sock.close()
        raise
    return sock


def send(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    payload = msgpack.packb(obj, use_bin_type=True)
    data = HEADER.pack(len(payload)) + payload
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        if sent < len(data):
            sock.sendall(data[sent:])
    else:
        sock.sendall(data)


def recv(sock: socket.socket, max_fds: int = 0, limit: int = MAX_FRAME) -> tuple[Any, list[int]]:
    """One frame (of at most ``limit`` bytes) and the descriptors it carried; EOFError when
    the peer closed."""
    fds: list[int] = []
    if max_fds:
        first, fds, flags, _addr = socket.recv_fds(sock, 1 << 16, max_fds)
        if flags & socket.MSG_CTRUNC:
            _close_all(fds)
            raise ConnectionError("descriptors were lost on the client socket")
    else:
        first = sock.recv(1 << 16)
    if not first:
        raise EOFError("the peer closed the client socket")
    try:
        data = first
        while len(data) < HEADER.size:
            data += _more(sock, HEADER.size - len(data))
        (size,) = HEADER.unpack_from(data)
        if size > limit:
            raise ConnectionError(f"a frame of {size} bytes on the client socket")
        end = HEADER.size + size
        if len(data) < end:
            buf = bytearray(data)
            while len(buf) < end:
                buf += _more(sock, end - len(buf))
            data = bytes(buf)
        return msgpack.unpackb(memoryview(data)[HEADER.size : end], raw=False), fds
    except BaseException:
        _close_all(fds)
        raise


def _more(sock: socket.socket, n: int) -> bytes:
    chunk = sock.recv(min(n, 1 << 20))
    if not chunk:
        raise EOFError("the peer closed the client socket mid-frame")
    return chunk


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)

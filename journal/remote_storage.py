"""A ``Storage`` served to another process over a socket: how the journal's writer process runs
on storage that is not real files.

Why: the writer process (journal/writer_child.py) is what writes the log in production, and the
crash simulator (``recovery.crashsim.SimStorage``) lives in the parent's memory. ``StorageServer``
runs a thread in the parent that executes each request on any ``Storage`` object; the child's
``RemoteStorage`` sends one request per call and waits for its reply. Every write, fsync and
rename the child makes is therefore done by the parent's storage, in the order it was made,
interleaved truly with the parent's own operations (a checkpoint's new segment, a torn tail's
truncation): the child cannot go on before its operation has been recorded.

Protocol, both ways: a frame is a u32 length and a msgpack array. A request is ``[method,
args...]``; storage methods take their arguments as the ``Storage`` protocol names them, file
methods take the handle number ``open_write``/``open_update`` returned first. A reply is ``[0,
result]`` or ``[1, errno, message, filename]``: the child raises it as ``OSError`` (so an
injected EIO or ENOSPC reaches the writer exactly as the disk's would). The server stops when
the child's end closes (the child exited or was killed); it closes the handles left open.

Real files never go through here: ``OsStorage`` is opened by the child itself (the hot path).
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import threading
from typing import Any

import msgpack

from journal.child import STORAGE_FD_PREFIX
from journal.storage import FileHandle, Storage

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<I")


def is_servable(storage: Storage) -> bool:
    """Whether ``storage``, not real files, asked to be served to the writer process.

    Opt-in (a true ``serves_writer_process`` attribute) rather than any storage that is not
    ``OsStorage``: tests open many in-memory homes with the default options, and each would
    otherwise start a process."""
    return bool(getattr(storage, "serves_writer_process", False))


def _send(sock: socket.socket, message: list[Any]) -> None:
    body = msgpack.packb(message, use_bin_type=True)
    sock.sendall(_LENGTH.pack(len(body)) + body)


def _receive(sock: socket.socket) -> list[Any] | None:
    """The next frame, or None at the end of the stream (between frames)."""
    head = _exactly(sock, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    body = _exactly(sock, length)
    if body is None:
        raise ConnectionError("storage socket closed inside a frame")
    message: list[Any] = msgpack.unpackb(body, raw=False)
    return message


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            if buf:
                raise ConnectionError("storage socket closed inside a frame")
            return None
        buf += chunk
    return bytes(buf)


class StorageServer:
    """Executes one client's requests on ``storage``, on a thread of this process."""

    def __init__(self, storage: Storage, handle: FileHandle | None = None) -> None:
        """``handle``, a file already open on ``storage``, is the client's handle 0."""
        self.storage = storage
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.child_fd = child.detach()  # passed to the child, closed here once it has it
        self._handles: dict[int, FileHandle] = {} if handle is None else {0: handle}
        self._next_handle = 1
        self._thread = threading.Thread(target=self._run, name="journal-storage", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """What the child's command line names its storage by."""
        return f"{STORAGE_FD_PREFIX}{self.child_fd}"

    def _run(self) -> None:
        sock = self._sock
        try:
            while True:
                request = _receive(sock)
                if request is None:
                    return
                _send(sock, self._execute(request))
        except OSError as exc:  # the child died mid-frame, or its end is gone
            log.debug("journal storage server stops: %s", exc)
        finally:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()

    def _execute(self, request: list[Any]) -> list[Any]:
        method, args = request[0], request[1:]
        try:
            return [0, self._call(method, args)]
        except OSError as exc:
            code = exc.errno or errno.EIO
            return [1, code, exc.strerror or str(exc), _filename(exc)]
        except Exception as exc:  # a bug or a misuse: the child's write fails, visibly
            return [1, errno.EIO, f"{type(exc).__name__}: {exc}", None]

    def _call(self, method: str, args: list[Any]) -> Any:
        storage = self.storage
        if method == "open_write":
            return self._keep(storage.open_write(args[0], append=args[1], sync_writes=args[2]))
        if method == "open_update":
            return self._keep(storage.open_update(args[0], sync_writes=args[1]))
        if method in _FILE_METHODS:
            handle = self._handles[args[0]]
            if method == "close":
                del self._handles[args[0]]
            return getattr(handle, method)(*args[1:])
        if method in _STORAGE_METHODS:
            return getattr(storage, method)(*args)
        raise ValueError(f"unknown storage request {method!r}")

    def _keep(self, handle: FileHandle) -> int:
        number = self._next_handle
        self._next_handle += 1
        self._handles[number] = handle
        return number

    def close(self) -> None:
        """Stops serving; call once the child has exited (its end closed)."""
        self._thread.join()
        self._sock.close()


_FILE_METHODS = frozenset({"write", "write_at", "fsync", "truncate", "close"})
_STORAGE_METHODS = frozenset(
    {"makedirs", "listdir", "exists", "size", "read", "rename", "unlink", "fsync_dir",
     "check_writable"}
)  # fmt: skip


def _filename(exc: OSError) -> str | None:
    name = exc.filename
    return name if isinstance(name, str) else None


class RemoteFile:
    """A file open on the server's storage."""

    __slots__ = ("storage", "number", "path")

    def __init__(self, storage: RemoteStorage, number: int, path: str) -> None:
        self.storage = storage
        self.number = number
        self.path = path

    def write(self, data: bytes) -> None:
        self.storage.call("write", self.number, bytes(data))

    def write_at(self, data: bytes, offset: int) -> None:
        self.storage.call("write_at", self.number, bytes(data), offset)

    def fsync(self) -> None:
        self.storage.call("fsync", self.number)

    def truncate(self, size: int) -> None:
        self.storage.call("truncate", self.number, size)

    def close(self) -> None:
        self.storage.call("close", self.number)


class RemoteStorage:
    """The ``Storage`` a ``StorageServer`` serves, seen from the child holding socket ``fd``."""

    def __init__(self, fd: int) -> None:
        self.root = f"{STORAGE_FD_PREFIX}{fd}"
        self._sock = socket.socket(fileno=fd)

    def call(self, method: str, *args: Any) -> Any:
        """One request, answered before it returns; the server's OSError raised here."""
        _send(self._sock, [method, *args])
        reply = _receive(self._sock)
        if reply is None:
            raise ConnectionError(errno.EPIPE, "the journal's storage server is gone")
        if reply[0] == 0:
            return reply[1]
        _, code, message, filename = reply
        raise OSError(code, message, filename) if filename else OSError(code, message)

    def makedirs(self, path: str) -> None:
        self.call("makedirs", path)

    def listdir(self, path: str) -> list[str]:
        names: list[str] = self.call("listdir", path)
        return names

    def exists(self, path: str) -> bool:
        return bool(self.call("exists", path))

    def size(self, path: str) -> int:
        return int(self.call("size", path))

    def read(self, path: str) -> bytes:
        return bytes(self.call("read", path))

    def open_write(self, path: str, *, append: bool, sync_writes: bool = False) -> RemoteFile:
        return RemoteFile(self, self.call("open_write", path, append, sync_writes), path)

    def open_update(self, path: str, *, sync_writes: bool = False) -> RemoteFile:
        return RemoteFile(self, self.call("open_update", path, sync_writes), path)

    def rename(self, src: str, dst: str) -> None:
        self.call("rename", src, dst)

    def unlink(self, path: str) -> None:
        self.call("unlink", path)

    def fsync_dir(self, path: str) -> None:
        self.call("fsync_dir", path)

    def check_writable(self, path: str) -> None:
        self.call("check_writable", path)

    def close(self) -> None:
        self._sock.close()

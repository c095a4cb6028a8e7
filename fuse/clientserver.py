"""The daemon's client socket: what the fsspec client (cli/client/) asks of a running daemon.

Every user may connect (the socket is 0666 under /run/shoal/; fuse/clientwire.py); who asks is
learnt from the connection (SO_PEERCRED: uid, gid, and the supplementary groups from /proc),
and engine/shortcircuit.py decides what that caller may see and read, with the kernel's rules.
The client is handed descriptors of the cached block files it may read (SCM_RIGHTS) and reads
them itself; blocks not cached it reads through READ, which caches them on the way.

Requests (paths are absolute namespace paths, as bytes) and their answers:

- HELLO: [daemon pid, instance token]; with the epoch memfd (fuse/clientwire.py).
- STAT path: attributes, ``[ino, mode, uid, gid, size, mtime_ns, version, nlink]``.
- LIST path: ``[[name, attributes], ...]``, sorted.
- OPEN path: ``[attributes, block size, [index, ...]]`` with one descriptor per index listed:
  the cached blocks among the first BATCH (engine/shortcircuit.py).
- BLOCKS path, ino, version, first: ``[index, ...]`` with their descriptors, from ``first``.
- READ path, ino, version, offset, length: the bytes (a miss, fetched and cached).

BLOCKS and READ walk the path again as the caller (no per-connection grants to keep), and
answer ESTALE if the file there is no longer that content: the client opens it again.

A thread per connection (a DataLoader worker holds one); no request runs on the FUSE event
loop, and none holds the namespace's lock while it touches a disk or a store.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import secrets
import socket
import socketserver
import struct
import threading
from typing import Any

from engine import shortcircuit
from engine.engine import Engine
from engine.errors import InvalidArgument, ShoalError, StaleHandle
from engine.filesystem import FileSystem
from engine.inode import Inode
from engine.posix import Caller
from fuse import clientwire as W
from fuse.admin import short_path
from fuse.boundary import errno_of
from journal import entries as E

log = logging.getLogger(__name__)

F_SEAL_FUTURE_WRITE = 0x0010  # Linux 5.1; not in Python 3.11's fcntl
PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
CLOSE_WAIT_S = 60.0  # how long closing waits for requests being answered

# Entries that change no path, attribute or content a client may have learnt: where a block
# lives, uploads, access times. Any other entry moves the epoch.
QUIET = frozenset(
    {E.BlockCached, E.BlockMoved, E.BlockRemoved, E.PersistRequested, E.Persisted, E.Accessed}
)


class Epoch:
    """The change counter clients map read-only: a memfd sealed against any write but through
    the daemon's own mapping (F_SEAL_FUTURE_WRITE), so no client can move it."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("shoal-epoch", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, W.EPOCH_BYTES)
        self.map = mmap.mmap(self.fd, W.EPOCH_BYTES)
        seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | F_SEAL_FUTURE_WRITE | fcntl.F_SEAL_SEAL
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, seals)
        self.value = 1
        W.EPOCH.pack_into(self.map, 0, self.value)

    def observe(self, entry: Any) -> None:
        """A namespace observer (under the namespace's lock, before the change is answered)."""
        if type(entry) not in QUIET:
            self.value += 1
            W.EPOCH.pack_into(self.map, 0, self.value)

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def peer_caller(sock: socket.socket) -> Caller:
    """Who is at the other end: SO_PEERCRED's uid and gid, and the groups /proc lists for its
    pid (none if that process is gone already: fewer rights, never more)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
    pid, uid, gid = PEERCRED.unpack(creds)
    groups: frozenset[int] = frozenset()
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    groups = frozenset(int(g) for g in line.split()[1:])
                    break
    except OSError:
        pass
    return Caller(uid, gid, groups=groups)


def attributes(fs: FileSystem, node: Inode) -> list[int]:
    return [node.id, node.mode, node.uid, node.gid, node.size, node.mtime, node.version,
            fs.nlink(node)]  # fmt: skip


class Session:
    """One connection's requests, answered for its caller."""

    def __init__(self, server: ClientServer, caller: Caller) -> None:
        self.fs = server.fs
        self.server = server
        self.caller = caller

    def answer(self, request: list[Any]) -> tuple[Any, list[int]]:
        """(result, descriptors to send with it) for one request."""
        op, args = request[0], request[1:]
        if ARGS.get(op) != len(args) or not all(_count(a) for a in args[1:]):
            raise InvalidArgument(f"a malformed {op!r} request on the client socket")
        if op == W.HELLO:
            return [os.getpid(), self.server.token], [self.server.epoch.fd]
        fs, caller = self.fs, self.caller
        path = _path(args[0])
        if op == W.STAT:
            return attributes(fs, shortcircuit.resolve(fs, caller, path)), []
        if op == W.LIST:
            entries = shortcircuit.listing(fs, caller, path)
            return [[os.fsencode(name), attributes(fs, n)] for name, n in entries], []
        if op == W.OPEN:
            node = shortcircuit.open_file(fs, caller, path)
            version, size = shortcircuit.content_of(fs, node)
            found = shortcircuit.block_fds(fs, node, version, 0)
            attrs = attributes(fs, node)
            attrs[4], attrs[6] = size, version  # the content the descriptors are of
            return [attrs, fs.block_size_for(node), [i for i, _ in found]], [f for _, f in found]
        node = self._reopened(path, args[1], args[2])
        if op == W.BLOCKS:
            found = shortcircuit.block_fds(fs, node, args[2], args[3])
            return [i for i, _ in found], [f for _, f in found]
        length = min(args[4], W.READ_MAX)  # READ
        return shortcircuit.read(fs, node.id, args[2], args[3], length), []

    def _reopened(self, path: str, ino: int, version: int) -> Inode:
        node = shortcircuit.open_file(self.fs, self.caller, path)
        if node.id != ino:
            raise StaleHandle(f"{path} is another file than inode {ino} now")
        return shortcircuit.current(self.fs, ino, version)


# Each request's arguments after the op: a path, then counts (ints, not negative).
ARGS = {W.HELLO: 0, W.STAT: 1, W.LIST: 1, W.OPEN: 1, W.BLOCKS: 4, W.READ: 5}


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _path(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise InvalidArgument("a path on the client socket travels as bytes")
    return os.fsdecode(raw)


class ClientServer:
    """Serves the client socket of ``engine``'s home from a thread per connection."""

    def __init__(self, engine: Engine, home: str) -> None:
        self.fs = engine.fs
        self.token = secrets.token_bytes(16)  # tells a client this daemon from a later one
        self.path = _socket_path(home)
        try:
            os.unlink(self.path)  # left by a daemon of this home that died; we hold its lock
        except FileNotFoundError:
            pass
        with short_path(os.path.dirname(self.path)) as folder:
            self.server = socketserver.ThreadingUnixStreamServer(
                os.path.join(folder, os.path.basename(self.path)), _handler(self)
            )
        os.chmod(self.path, 0o666)  # anyone may ask; the files' permissions decide
        self.epoch = Epoch()
        self._gate = engine.ns.gate
        self._gate.observers.append(self.epoch.observe)
        # Connections open and requests being answered: closing ends the first and waits for
        # the second, so that no request touches the engine once it closes.
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._closing = False
        self._idle = threading.Condition()
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="client-socket", daemon=True
        )

    @classmethod
    def serving(cls, engine: Engine, home: str) -> ClientServer | None:
        """A started server; None (said in the log) if it cannot listen: the mount serves on
        without its Python client."""
        try:
            server = cls(engine, home)
        except OSError as exc:
            log.warning("no client socket for the fsspec client: %s", exc)
            return None
        server.start()
        return server

    def start(self) -> None:
        self.thread.start()
        log.info("client socket at %s", self.path)

    def serve(self, sock: socket.socket) -> None:
        """One connection's requests, answered in turn until it closes."""
        with self._idle:
            if self._closing:
                return
            self._connections.add(sock)
        try:
            session = Session(self, peer_caller(sock))
            while True:
                try:
                    request, _ = W.recv(sock, limit=W.MAX_REQUEST)
                except (EOFError, OSError, ValueError):
                    return
                with self._idle:
                    if self._closing:
                        return
                    self._in_flight += 1
                try:
                    if not _answer(session, request, sock):
                        return
                finally:
                    with self._idle:
                        self._in_flight -= 1
                        self._idle.notify_all()
        finally:
            with self._idle:
                self._connections.discard(sock)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self._idle:
            self._closing = True
            for sock in self._connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # a reader waiting for a request wakes
                except OSError:
                    pass
            # A miss waits on its store no longer than the read deadline.
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=CLOSE_WAIT_S)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._gate.observers.remove(self.epoch.observe)
        # Clients still holding the memfd see it move: what they kept is asked for again (of
        # the next daemon, which may know of changes made meanwhile).
        self.epoch.observe(None)


def _socket_path(home: str) -> str:
    """Under /run/shoal/ where this daemon may make (or trust and write) it, else in the
    home."""
    try:
        os.mkdir(W.RUN_DIR, 0o755)
        os.chmod(W.RUN_DIR, 0o755)  # whatever the umask: every user must reach the socket
    except OSError:
        pass
    if W.trusted_run_dir() and os.access(W.RUN_DIR, os.W_OK | os.X_OK):
        return W.run_socket(home)
    return W.home_socket(home)


def _answer(session: Session, request: Any, sock: socket.socket) -> bool:
    """Answers one request; False if the connection broke."""
    fds: list[int] = []
    try:
        if not isinstance(request, list) or not request or not isinstance(request[0], str):
            raise InvalidArgument("a request on the client socket is a list")
        result, fds = session.answer(request)
        reply: list[Any] = [0, result]
    except (ShoalError, OSError) as exc:
        reply = [errno_of(exc), str(exc)]
    except Exception as exc:  # a bug: logged and answered; the daemon serves on
        log.exception("client request %r failed", request[:1])
        reply = [errno.EIO, f"internal error: {exc}"]
    try:
        W.send(sock, reply, fds)
    except OSError:
        return False
    finally:
        if fds and fds[0] != session.server.epoch.fd:
            for fd in fds:
                os.close(fd)
    return True


def _handler(server: ClientServer) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            server.serve(self.request)

    return Handler

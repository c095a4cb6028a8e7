"""The client's side of the daemon's client socket: one connection per process, what it
learnt of opened files, and the descriptors of their cached blocks.

What is known of a path (its inode, content version, size, and one open descriptor per
cached block) is used again without asking while the daemon's epoch (a counter it moves on
every change of the namespace, of a file's attributes or content; fuse/clientwire.py) has
not moved: a warm re-read costs a lookup here and a pread, and the daemon never hears of it.
Only files none of whose blocks the daemon lacked are kept so; bounded by ``max_open`` descriptors,
the least recently opened going first. A descriptor is closed when nothing holds its
``Block`` any more (the table, or a file object reading it), never under a reader.

Processes: a connection used in a process forked after it was made (a DataLoader worker)
connects again (a socket shared by two processes would interleave their frames), keeping
the descriptors it inherited while the daemon is the same one (its instance token); a
process started afresh (spawn) unpickles its file system from the constructor's arguments
and connects on first use. A daemon restarted since makes the client forget everything; one
that died (kill -9 moves no epoch) is noticed at the next open, by a poll of the socket.
"""

from __future__ import annotations

import mmap
import os
import select
import socket
import threading
import weakref
from collections import OrderedDict
from typing import Any

from fuse import clientwire as W

BATCH = 64  # the daemon hands out at most this many block descriptors per answer

_forks = [0]  # how many times this process's line was forked: a child sees one more
_live: weakref.WeakSet[Connection] = weakref.WeakSet()


def _forked() -> None:
    _forks[0] += 1
    for conn in list(_live):  # a lock another thread held at the fork would stay held
        conn._lock = threading.Lock()


os.register_at_fork(after_in_child=_forked)


class Block:
    """An open descriptor of one cached block file, closed with its last holder."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class Opened:
    """What the daemon said of a file opened for reading. ``blocks``: index -> its Block, or
    None for one the daemon does not cache (read through it); indexes never asked about are
    absent."""

    __slots__ = ("path", "ino", "version", "size", "bs", "attrs", "blocks", "epoch")

    def __init__(self, path: str, attrs: list[int], bs: int, epoch: int) -> None:
        self.path = path
        self.ino, self.size, self.version = attrs[0], attrs[4], attrs[6]
        self.attrs = attrs
        self.bs = bs
        self.blocks: dict[int, Block | None] = {}
        self.epoch = epoch

    @property
    def count(self) -> int:
        return (self.size + self.bs - 1) // self.bs

    def complete(self) -> bool:
        """Every block known, as a descriptor."""
        return sum(b is not None for b in self.blocks.values()) == self.count

    def reusable(self) -> bool:
        """No block known to be missing (those not asked about yet are asked for on use)."""
        return None not in self.blocks.values()

    def learn(self, first: int, indexes: list[int], fds: list[int]) -> None:
        """The daemon's answer about blocks ``first`` .. ``first + BATCH``."""
        for idx in range(first, min(first + BATCH, self.count)):
            self.blocks[idx] = None
        for idx, fd in zip(indexes, fds, strict=True):
            self.blocks[idx] = Block(fd)


class Connection:
    def __init__(self, sockets: list[str], max_open: int) -> None:
        self.sockets = sockets
        self.max_open = max_open
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._forks = -1  # not connected in this process yet
        self._token: bytes | None = None
        self._epoch: mmap.mmap | None = None
        self._hangup = select.poll()  # the socket's: readable between requests = daemon gone
        self._files: OrderedDict[str, Opened] = OrderedDict()
        self._held = 0  # descriptors in _files
        self.requests = 0  # asked of the daemon, by this process (a warm re-read asks none)
        _live.add(self)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a Shoal connection is not pickled: its file system is")

    # -- the socket ----------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._forks != _forks[0]:
            self._connect()

    def _connect(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the parent's copy stays open in the parent
            self._sock = None
        errors = []
        for path in self.sockets:
            try:
                sock = W.connect(path)
            except OSError as exc:
                errors.append(f"{path}: {exc}")
                continue
            try:
                W.send(sock, [W.HELLO])
                reply, fds = W.recv(sock, max_fds=1)
            except (OSError, EOFError) as exc:
                sock.close()
                errors.append(f"{path}: {exc}")
                continue
            if reply[0] != 0 or len(fds) != 1:
                sock.close()
                for fd in fds:
                    os.close(fd)
                errors.append(f"{path}: the daemon refused to say hello ({reply[1]})")
                continue
            try:
                epoch = mmap.mmap(fds[0], W.EPOCH_BYTES, prot=mmap.PROT_READ)
            finally:
                os.close(fds[0])
            _pid, token = reply[1]
            self.requests = 0 if self._forks != _forks[0] else self.requests
            if token != self._token:  # another daemon: what the last one said is void
                self._files.clear()
                self._held = 0
                self._token = token
            self._sock, self._epoch, self._forks = sock, epoch, _forks[0]
            self._hangup = select.poll()
            self._hangup.register(sock, select.POLLIN)
            return
        raise ConnectionRefusedError(
            "no Shoal daemon answers on its client socket (" + "; ".join(errors) + ")"
        )

    def call(self, *request: Any, max_fds: int = 0) -> tuple[Any, list[int]]:
        """The daemon's answer to ``request`` and the descriptors it carried; the daemon's
        refusal as OSError with its errno (FileNotFoundError, PermissionError...)."""
        with self._lock:
            self._ensure()
            self.requests += 1
            try:
                reply, fds = self._exchange(list(request), max_fds)
            except (OSError, EOFError):  # the daemon restarted: once more, on a new socket
                self._connect()
                reply, fds = self._exchange(list(request), max_fds)
        status, result = reply
        if status:
            for fd in fds:
                os.close(fd)
            raise OSError(status, f"{os.strerror(status)}: {result}")
        return result, fds

    def _exchange(self, request: list[Any], max_fds: int) -> tuple[Any, list[int]]:
        assert self._sock is not None
        W.send(self._sock, request)
        return W.recv(self._sock, max_fds)

    def epoch(self) -> int:
        epoch = self._epoch
        return -1 if epoch is None else int(W.EPOCH.unpack_from(epoch)[0])

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._files.clear()
            self._held = 0
            self._forks = -1

    # -- files -------------------------------------------------------------------------------

    def open(self, path: str) -> Opened:
        """What is known of namespace ``path`` opened for reading: kept from an earlier open
        while the epoch has not moved, else asked anew."""
        if self._forks != _forks[0]:
            with self._lock:
                self._ensure()
        epoch = self.epoch()
        known = self._files.get(path)
        # Between requests the socket has nothing to read unless the daemon is gone (killed:
        # its epoch will never move again). A poll costs a microsecond, a stale read more.
        if known is not None and known.epoch == epoch and not self._hangup.poll(0):
            return known
        # The epoch was read before asking: a change meanwhile moves it past this one.
        result, fds = self.call(W.OPEN, os.fsencode(path), max_fds=BATCH)
        attrs, bs, indexes = result
        opened = Opened(path, attrs, bs, epoch)
        opened.learn(0, indexes, fds)
        self._keep(opened)
        return opened

    def _keep(self, opened: Opened) -> None:
        with self._lock:
            old = self._files.pop(opened.path, None)
            if old is not None:
                self._held -= len(old.blocks)
            if not opened.reusable() or len(opened.blocks) > self.max_open:
                return
            self._files[opened.path] = opened
            self._held += len(opened.blocks)
            self._trim()

    def _trim(self) -> None:
        while self._held > self.max_open:
            _path, gone = self._files.popitem(last=False)
            self._held -= len(gone.blocks)

    def more_blocks(self, opened: Opened, first: int) -> None:
        result, fds = self.call(
            W.BLOCKS, os.fsencode(opened.path), opened.ino, opened.version, first,
            max_fds=BATCH,
        )  # fmt: skip
        known = len(opened.blocks)
        opened.learn(first, result, fds)
        with self._lock:
            if self._files.get(opened.path) is opened:
                self._held += len(opened.blocks) - known
                if not opened.reusable():
                    del self._files[opened.path]
                    self._held -= len(opened.blocks)
                self._trim()

    def read_through(self, opened: Opened, offset: int, length: int) -> bytes:
        data, _ = self.call(
            W.READ, os.fsencode(opened.path), opened.ino, opened.version, offset, length
        )
        return bytes(data)

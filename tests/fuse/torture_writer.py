"""One writer of the kill -9 torture test (tests/fuse/test_torture.py), run as its own process:
random create, write, fsync, rename, append, rewrite, truncate and unlink calls on a small pool
of names in one directory of a Shoal mount, until a call fails (the daemon was killed).

Nothing of Shoal is imported: this is a user's program. It keeps every file's bytes in memory
and logs, to a file outside the mount, one JSON line per event, each written with one write(2)
so that a writer killed at any point leaves whole lines:

- ``{"base": {name: digest}}``: what it found in the directory at its start;
- ``{"n": N, "op": KIND, "stages": [{name: state, ...}, ...]}`` before operation N: the
  states its names may be left in by the operation, in order (a state is None for no file,
  the SHA-256 of the bytes, or "~" + it for a file created and never committed since);
- ``{"n": N, "at": I}`` once a call returned that makes stage I durable (fsync, close, a
  truncate by path, rename, unlink: docs/mount.md); the operation is done at its last stage;
- ``{"error": ERRNO, "n": N, "call": NAME}`` for the call that failed, after which it exits.

    python torture_writer.py DIR STATE_JSON LOG SEED
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections.abc import Callable
from typing import TypeVar

NAMES = [f"f{i:02d}" for i in range(10)]
BIG = 3 << 19  # files grow up to about this much; larger ones are mostly cut
UNCOMMITTED = "~"
T = TypeVar("T")


def digest(data: bytes) -> str:
    """How the log names a content (tests/fuse/torture.py computes the same)."""
    return f"{hashlib.sha256(data).hexdigest()}:{len(data)}"


class Writer:
    def __init__(self, root: str, state_file: str, log: str, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.files: dict[str, bytes] = {}
        self.uncommitted: set[str] = set()  # created, no content committed since
        self.n = 0
        with open(state_file) as f:
            expected: dict[str, str] = json.load(f)
        self.uncommitted = {n for n, s in expected.items() if s.startswith(UNCOMMITTED)}
        for name in self.call("listdir", os.listdir, root):
            self.files[name] = self.call("read", read_file, self.path(name))
        self.emit({"base": {n: self.state(n) for n in sorted(self.files)}})

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def emit(self, record: dict[str, object]) -> None:
        os.write(self.log_fd, (json.dumps(record) + "\n").encode())

    def state(self, name: str) -> str | None:
        if name not in self.files:
            return None
        prefix = UNCOMMITTED if name in self.uncommitted else ""
        return prefix + digest(self.files[name])

    def look(self, name: str, data: bytes) -> str:
        """The state of ``name`` once it holds ``data``: a file never committed stays so while
        its bytes are what it was created with (a write of nothing commits nothing)."""
        fresh = name not in self.files or name in self.uncommitted
        if fresh and data == self.files.get(name, b""):
            return UNCOMMITTED + digest(data)
        return digest(data)

    def settle(self, name: str, data: bytes) -> None:
        if not self.look(name, data).startswith(UNCOMMITTED):
            self.uncommitted.discard(name)
        elif name not in self.files:
            self.uncommitted.add(name)
        self.files[name] = data

    def data(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def size(self) -> int:
        """Mostly small, sometimes a few blocks (the mount's block size is 256 KiB)."""
        roll = self.rng.random()
        if roll < 0.5:
            return self.rng.randint(0, 8 << 10)
        if roll < 0.9:
            return self.rng.randint(8 << 10, 300 << 10)
        return self.rng.randint(300 << 10, 1200 << 10)

    # -- the operations: each returns its stages and the calls that reach them ---------------

    def begin(self, kind: str, stages: list[dict[str, str | None]]) -> None:
        self.n += 1
        self.emit({"n": self.n, "op": kind, "stages": stages})

    def reached(self, stage: int) -> None:
        self.emit({"n": self.n, "at": stage})

    def call(self, name: str, fn: Callable[..., T], *args: object) -> T:
        try:
            return fn(*args)
        except OSError as exc:
            self.emit({"error": exc.errno, "n": self.n, "call": name, "msg": str(exc)})
            raise SystemExit(0) from None

    def write_twice(
        self, kind: str, name: str, fd_flags: int, first: bytes, second: bytes,
        contents: list[bytes], offsets: tuple[int | None, int | None] = (None, None),
        opened: list[dict[str, str | None]] | None = None,
    ) -> None:  # fmt: skip
        """open; write ``first``; maybe fsync; write ``second``; close. ``contents`` are the
        file's bytes after the first and after the second write; ``opened`` the stage the
        open itself may leave (a create, a truncating open)."""
        sync = self.rng.random() < 0.4
        stages = list(opened or [])
        if sync:
            stages.append({name: self.look(name, contents[0])})
        stages.append({name: self.look(name, contents[1])})
        self.begin(kind, stages)
        fd = self.call("open", os.open, self.path(name), fd_flags, 0o644)
        if fd_flags & os.O_EXCL:
            self.reached(0)  # the name is journaled at create (docs/mount.md)
        for i, (data, offset) in enumerate(zip((first, second), offsets, strict=True)):
            if data:
                self.call("write", write_all, fd, data, offset)
            if sync and i == 0:
                self.call("fsync", os.fsync, fd)
                self.reached(len(stages) - 2)
        self.call("close", os.close, fd)
        self.reached(len(stages) - 1)
        self.settle(name, contents[1])

    def create(self, name: str) -> None:
        a, b = self.data(self.size()), self.data(self.size() // 2)
        opened: list[dict[str, str | None]] = [{name: self.look(name, b"")}]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        self.write_twice("create", name, flags, a, b, [a, a + b], opened=opened)

    def rewrite(self, name: str) -> None:
        a, b = self.data(self.size()), self.data(self.size() // 2)
        # The kernel may truncate at open by a setattr of its own, which commits at once.
        opened: list[dict[str, str | None]] = [{name: self.look(name, b"")}]
        flags = os.O_WRONLY | os.O_TRUNC
        self.write_twice("rewrite", name, flags, a, b, [a, a + b], opened=opened)

    def append(self, name: str) -> None:
        old = self.files[name]
        a, b = self.data(self.size() // 2), self.data(self.rng.randint(0, 64 << 10))
        flags = os.O_WRONLY | os.O_APPEND
        self.write_twice("append", name, flags, a, b, [old + a, old + a + b])

    def pwrite(self, name: str) -> None:
        """Writes in place: inside the file, across its end, or past it (a hole of zeros)."""
        old = self.files[name]
        a, b = self.data(self.rng.randint(1, 40 << 10)), self.data(self.rng.randint(1, 4 << 10))
        at_a = self.rng.randint(0, len(old) + (64 << 10))
        at_b = self.rng.randint(0, len(old))
        after_a = patch(old, at_a, a)
        self.write_twice(
            "pwrite", name, os.O_RDWR, a, b, [after_a, patch(after_a, at_b, b)], (at_a, at_b)
        )

    def truncate(self, name: str) -> None:
        old = self.files[name]
        size = self.rng.choice([0, self.rng.randint(0, len(old)), len(old) + 1000])
        new = (old + bytes(max(0, size - len(old))))[:size]
        if self.rng.random() < 0.5:  # by path: committed at once
            self.begin("truncate", [{name: self.look(name, new)}])
            self.call("truncate", os.truncate, self.path(name), size)
        else:  # by descriptor: committed at close
            self.begin("ftruncate", [{name: self.look(name, new)}])
            fd = self.call("open", os.open, self.path(name), os.O_RDWR)
            self.call("ftruncate", os.ftruncate, fd, size)
            self.call("close", os.close, fd)
        self.reached(0)
        self.settle(name, new)

    def rename(self, name: str, to: str) -> None:
        self.begin("rename", [{name: None, to: self.state(name)}])
        self.call("rename", os.rename, self.path(name), self.path(to))
        self.reached(0)
        self.files[to] = self.files.pop(name)
        self.uncommitted.discard(to)
        if name in self.uncommitted:
            self.uncommitted.discard(name)
            self.uncommitted.add(to)

    def unlink(self, name: str) -> None:
        self.begin("unlink", [{name: None}])
        self.call("unlink", os.unlink, self.path(name))
        self.reached(0)
        del self.files[name]
        self.uncommitted.discard(name)

    def step(self, last: str | None) -> str:
        """One operation; returns the name it touched. Right after a write, often an unlink or
        rename of the same file: uploads and rewrites still in flight are what races them."""
        rng = self.rng
        present = sorted(self.files)
        absent = [n for n in NAMES if n not in self.files]
        if last in self.files and rng.random() < 0.3:
            if rng.random() < 0.5:
                self.unlink(last)
            else:
                self.rename(last, rng.choice([n for n in NAMES if n != last]))
            return last
        if not present or (absent and rng.random() < 0.25):
            name = rng.choice(absent)
            self.create(name)
            return name
        name = rng.choice(present)
        roll = rng.random()
        if len(self.files[name]) > BIG and roll < 0.6:
            self.truncate(name)
        elif roll < 0.2:
            self.append(name)
        elif roll < 0.4:
            self.pwrite(name)
        elif roll < 0.55:
            self.rewrite(name)
        elif roll < 0.7:
            self.truncate(name)
        elif roll < 0.85:
            self.rename(name, rng.choice([n for n in NAMES if n != name]))
        else:
            self.unlink(name)
        return name

    def run(self) -> None:
        last: str | None = None
        while True:
            last = self.step(last)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_all(fd: int, data: bytes, offset: int | None) -> None:
    """All of ``data``, at the file's position (``offset`` None) or at ``offset``."""
    view = memoryview(data)
    while view:
        done = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        view = view[done:]
        offset = None if offset is None else offset + done


def patch(old: bytes, offset: int, data: bytes) -> bytes:
    """``old`` with ``data`` written at ``offset`` (zeros fill a gap past its end)."""
    padded = old + bytes(max(0, offset - len(old)))
    return padded[:offset] + data + padded[offset + len(data) :]


if __name__ == "__main__":
    Writer(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])).run()

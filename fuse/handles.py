"""What the frontend keeps per open file and per open directory: the ``fh`` the kernel hands
back with every request on it. One small object per open handle, dropped at its release."""

from __future__ import annotations

from array import array

from engine.inode import Inode
from fuse.writebuffer import WriteBuffer


class Handle:
    __slots__ = ("ino", "buffer", "read")

    def __init__(self, node: Inode, buffer: WriteBuffer | None) -> None:
        self.ino = node.id
        self.buffer = buffer
        self.read = False  # read through yet: the first read may move the access time


class DirHandle:
    __slots__ = ("ino", "names", "ids")

    def __init__(self, ino: int, ids: array[int]) -> None:
        self.ino = ino
        # children when the listing (re)started, after "." and "..": offsets index it
        self.names: list[str] = []
        self.ids = ids

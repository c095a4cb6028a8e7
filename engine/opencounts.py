"""Open handles per inode, as the frontend reports them: what decides whether a file losing
its last name goes at once or lives on as an orphan until its last close (POSIX).

Counted on every open and close, so without a lock: the frontend reports both from one
thread (its event loop), the only writer; the readers (an unlink deciding whether it orphans,
in a worker thread under the namespace's lock) make one dict lookup, atomic under the GIL. An
entry exists only while a handle is open: nothing here grows with the number of files.
"""

from __future__ import annotations

from engine.inode import S_IFMT, S_IFREG, Inode


class OpenCounts:
    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        # Handles that write, of the same files: an ASYNC_THROUGH upload waits for their last
        # close (engine/persister.py), so attribute changes before it never meet one under way.
        self._writers: dict[int, int] = {}
        # Opens since the process started (`shoal report`): a pass the kernel's page cache
        # serves reaches Shoal as opens without reads.
        self.total = 0

    def opened(self, ino: int, writing: bool = False) -> None:
        counts = self._counts
        counts[ino] = counts.get(ino, 0) + 1
        self.total += 1
        if writing:
            self._writers[ino] = self._writers.get(ino, 0) + 1

    def released(self, ino: int, writing: bool = False) -> bool:
        """Counts one handle of ``ino`` closed; True if it was its last."""
        if writing:
            writers = self._writers
            left = writers.get(ino, 0) - 1
            if left > 0:
                writers[ino] = left
            else:
                writers.pop(ino, None)
        counts = self._counts
        left = counts.get(ino, 0) - 1
        if left > 0:
            counts[ino] = left
            return False
        counts.pop(ino, None)
        return True

    def is_open(self, ino: int) -> bool:
        return ino in self._counts

    def count(self, ino: int) -> int:
        """Handles of ``ino`` open."""
        return self._counts.get(ino, 0)

    def writing(self, ino: int) -> bool:
        """Whether a handle open for writing ``ino`` is still open."""
        return ino in self._writers

    def orphans(self, node: Inode | None) -> bool:
        """Whether removing one name of ``node`` leaves it an orphan: a regular file losing
        its last name while a handle is open (a hard-linked file lives on by its others)."""
        return (
            node is not None
            and node.mode & S_IFMT == S_IFREG
            and node.nlink == 1
            and self.is_open(node.id)
        )

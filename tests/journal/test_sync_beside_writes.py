"""The writer process keeps writing and acknowledging while a sync of the log is under way.

Before, its main loop ran each commit interval's sync itself (the cache tiers' syncfs, then
the log's fsync): an entry that arrived meanwhile was neither written nor acknowledged until
the sync ended, and a single-threaded `tar x` waited that long for about one request in three.
Here the data sync is held open (the disk made slow at will) while a second entry is sent: its
"written" ack must come before the sync ends, it must not count as durable, and it must not be
flagged as a write's start (the sync under way does not cover it)."""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

from journal.datasync import DataSync
from journal.format import FLAG_WRITE_START, RECORD_HEADER, Record, iter_records
from journal.layout import segment_name
from journal.storage import OsStorage
from journal.writer import SegmentWriter
from journal.writer_child import ACK, CONTROL_DATA, MESSAGE_HEADER, serve

WAIT_S = 20.0  # a bound on a hang, never a speed: every wait ends as soon as it may


class HeldDataSync(DataSync):
    """A real syncfs of ``dirs``, begun only once the test lets it (a disk as slow as wanted)."""

    def __init__(self, dirs: list[str]) -> None:
        super().__init__(dirs)
        self.started = threading.Event()
        self.release = threading.Event()

    def sync_files(self) -> None:
        self.started.set()
        self.release.wait(WAIT_S)
        super().sync_files()

    def sync(self) -> None:  # the name the inline loop calls, before this change too
        if self.pending:
            self.sync_files()
            self.pending = False


def _send(fd: int, code: int, payload: bytes = b"") -> None:
    os.write(fd, MESSAGE_HEADER.pack(len(payload), code) + payload)


def _ack_until(fd: int, ok: object) -> tuple[int, int]:
    """Reads acks until ``ok(written, durable)`` holds (or the bound runs out): the last one."""
    last = (-1, -1)
    pending = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not (last[0] >= 0 and ok(*last)):  # type: ignore[operator]
        if not poller.poll(WAIT_S * 1000):
            break
        pending += os.read(fd, 4096)
        while len(pending) >= ACK.size:
            written, durable, _commits = ACK.unpack_from(pending)
            pending = pending[ACK.size :]
            last = (written, durable)
    return last


def test_an_entry_is_acknowledged_while_the_log_sync_before_it_is_under_way(
    tmp_path: Path,
) -> None:
    storage = OsStorage(str(tmp_path))
    storage.makedirs("journal")
    tier = tmp_path / "tier"
    tier.mkdir()
    segment = SegmentWriter(storage, "journal", 1 << 20, None, 1, 0, sync_each=False)
    data = HeldDataSync([str(tier)])
    data_r, data_w = os.pipe()
    ack_r, ack_w = os.pipe()
    child = threading.Thread(target=serve, args=(segment, 0, data_r, ack_w, 0.0, 0.001, data))
    child.start()
    try:
        _send(data_w, CONTROL_DATA)  # a block written unsynced, named by entry 1
        _send(data_w, 7, b"first")
        assert _ack_until(ack_r, lambda w, d: w >= 1)[0] == 1
        assert data.started.wait(WAIT_S)  # the interval ran out: entry 1's sync is under way

        _send(data_w, 7, b"second")
        written, durable = _ack_until(ack_r, lambda w, d: w >= 2)
        assert written == 2  # before: no ack at all until the sync ended
        assert durable == 0  # the held sync covers neither entry yet

        data.release.set()
        assert _ack_until(ack_r, lambda w, d: d >= 2) == (2, 2)
    finally:
        data.release.set()
        os.close(data_w)
        child.join(WAIT_S)
        for fd in (data_r, ack_r, ack_w):
            os.close(fd)
    assert not child.is_alive()

    raw = (tmp_path / "journal" / segment_name(1)).read_bytes()
    records = [r for r in iter_records(raw, 1) if isinstance(r, Record)]
    assert [(r.seq, bytes(r.payload)) for r in records] == [(1, b"first"), (2, b"second")]
    # Entry 1 starts a write (everything before it was synced); entry 2, written while the
    # sync of entry 1 was under way, does not: no sync began after it until the next one.
    flags = [RECORD_HEADER.unpack_from(raw, r.offset)[-1] for r in records]
    assert [bool(f & FLAG_WRITE_START) for f in flags] == [True, False]

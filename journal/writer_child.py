"""The journal writer process: appends the records its parent sends to the log and syncs them.

Why a process, and the protocol it speaks: see journal/commit_process.py. This side reads the
data pipe, frames every whole entry it has received (sequence number, checksum), writes them
with one write per batch (O_DSYNC with journal.durability = "every_op"; else synced within the
commit interval or when the parent asks),
rotates segments as the thread writer does, and answers each batch with an ack. It stops at the
end of the data pipe: its parent closed it, or died (then what arrived is still written; none
of it was acknowledged, and recovery accepts it as "issued, not acknowledged").
"""

from __future__ import annotations

import os
import select
import signal
import struct
import sys
import time

from journal.child import STORAGE_FD_PREFIX
from journal.datasync import DataSync, decode
from journal.format import FLAG_WRITE_START, SEGMENT_HEADER, frame
from journal.layout import segment_name
from journal.logsync import ACK as ACK  # the protocol: commit_process.py reads them here
from journal.logsync import LogSync, failure_ack
from journal.storage import FileHandle, OsFile, OsStorage, Storage, join
from journal.writer import SegmentWriter

# Parent -> child: one message per entry, in sequence order (the child numbers them).
MESSAGE_HEADER = struct.Struct("<IH")  # payload length, entry type code
CONTROL_ROTATE = 0xFFFF  # payload: u64 seq; the parent has created segment <seq>: append there
CONTROL_SYNC = 0xFFFE  # no payload: make everything sent before it durable, then ack
# No payload: data a later entry names was written unsynced: sync the data file systems before
# the next sync of the log (journal/datasync.py).
CONTROL_DATA = 0xFFFD
READ_SIZE = 1 << 20

_unpack_message = MESSAGE_HEADER.unpack_from
_unpack_seq = struct.Struct("<Q").unpack_from


def _read_batch(data_fd: int, window_s: float) -> bytes:
    chunk = os.read(data_fd, READ_SIZE)
    if window_s > 0 and chunk:
        # The flush window: more writers may join this batch (fewer, larger commits, each
        # entry waiting up to the window longer).
        time.sleep(window_s)
        while _readable(data_fd, 0):
            more = os.read(data_fd, READ_SIZE)
            chunk += more
            if not more or len(more) < READ_SIZE:
                break
    return chunk


def _idle_until(data_fd: int, deadline: float | None) -> bool:
    """Whether the data pipe has something before ``deadline`` (None: wait as long as it
    takes); False: the commit interval ran out first."""
    if deadline is None:
        return True
    timeout = deadline - time.monotonic()
    return timeout > 0 and _readable(data_fd, timeout)


def _readable(fd: int, timeout_s: float) -> bool:
    """Whether ``fd`` has something to read (or its writer closed it) within ``timeout_s``.
    poll, not select: the descriptor's number is the parent's (pass_fds), and a parent holding
    over 1024 files (FD_SETSIZE) hands down numbers select() refuses."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout_s * 1000))


def serve(
    segment: SegmentWriter,
    durable: int,
    data_fd: int,
    ack_fd: int,
    window_s: float = 0.0,
    interval_s: float = 0.0,
    data: DataSync | None = None,
) -> None:
    """Writes what arrives; with ``interval_s`` (segment not ``sync_each``) syncs within that
    time of the first write after the last sync, or at once when a CONTROL_SYNC asks, in a
    thread of its own on a real disk (journal/logsync.py). Before each sync, the data files
    its entries name are synced (``data``: journal/datasync.py)."""
    # A storage served over a socket answers one request at a time: its syncs stay inline.
    threaded = interval_s > 0 and isinstance(segment.storage, OsStorage)
    log = LogSync(segment, data or DataSync([]), ack_fd, durable, interval_s, threaded)
    buf = bytearray()
    while True:
        if not _idle_until(data_fd, log.deadline()):
            log.sync_now()
            log.ack()
            continue
        chunk = _read_batch(data_fd, window_s)
        buf += chunk
        off = 0
        records: list[bytes] = []
        sync_asked = False
        end_of_buf = len(buf)
        while off + MESSAGE_HEADER.size <= end_of_buf:
            length, code = _unpack_message(buf, off)
            start = off + MESSAGE_HEADER.size
            end = start + length
            if end > end_of_buf:
                break
            off = end
            if code == CONTROL_SYNC:
                sync_asked = True
            elif code == CONTROL_DATA:
                log.mark_data()
            elif code == CONTROL_ROTATE:
                if records:
                    log.write(records)
                    records = []
                (seq,) = _unpack_seq(buf, start)
                # The parent created it: a header, nothing allocated after it yet.
                log.rotate(join(segment.root, segment_name(seq)), seq, SEGMENT_HEADER.size)
            else:
                # Framing (the checksum) happens here, on this process's own core. Each batch
                # is one write; between syncs, all writes are one (writer.py).
                flags = 0 if records or segment.unsynced else FLAG_WRITE_START
                seq = log.written + len(records) + 1
                records.append(frame(seq, code, bytes(buf[start:end]), flags))
        if records:
            log.write(records)
        if not chunk:
            log.close()
            log.sync_now()
            return  # a partial message left in buf was never complete, so never acknowledged
        if segment.sync_each or sync_asked:
            log.ask()
        del buf[:off]
        if off:
            log.ack()


def main() -> None:
    # The parent decides when this process ends (by closing the pipe): a Ctrl-C or SIGTERM sent
    # to the whole process group must not stop it before the records it holds are written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (
        storage_root, root, segment_size, first_seq, size, allocated, preallocate, handle,
        durable, data_fd, ack_fd, window_s, interval_s, data_dirs,
    ) = sys.argv[1:15]  # fmt: skip
    storage: Storage
    if storage_root.startswith(STORAGE_FD_PREFIX):
        # Storage in the parent's memory (the crash simulator), served over a socket.
        from journal.remote_storage import RemoteFile, RemoteStorage

        storage = remote = RemoteStorage(int(storage_root[len(STORAGE_FD_PREFIX) :]))
    else:
        storage = OsStorage(storage_root)
    segment = SegmentWriter(
        storage, root, int(segment_size), None, int(first_seq), int(size),
        preallocate=int(preallocate), sync_each=float(interval_s) <= 0,
    )  # fmt: skip
    ack = int(ack_fd)
    try:
        if handle:
            # The parent's open segment, handed over (an fd; for served storage, the server's
            # number of its handle): opening it again by name could race a checkpoint that
            # the parent starts meanwhile and whose clean-up deletes that segment.
            path = join(root, segment_name(int(first_seq)))
            opened: FileHandle
            if isinstance(storage, OsStorage):
                opened = OsFile(int(handle), path, sync_writes=segment.sync_each)
            else:
                opened = RemoteFile(remote, int(handle), path)
            segment.adopt(opened, int(first_seq), int(size), int(allocated))
        data = decode(data_dirs)
        serve(segment, int(durable), int(data_fd), ack, float(window_s), float(interval_s), data)
        data.close()
        segment.close()
    except BrokenPipeError:
        sys.exit(1)  # the parent is gone; it can hear nothing more
    except BaseException as exc:  # anything else: the parent must stop acknowledging
        try:
            os.write(ack, failure_ack(str(exc) or repr(exc)))
        finally:
            sys.exit(1)


if __name__ == "__main__":
    main()

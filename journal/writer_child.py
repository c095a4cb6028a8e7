"""The journal writer process: appends the records its parent sends to the log and syncs them.

Why a process, and the protocol it speaks: see journal/commit_process.py. This side reads the
data pipe, frames every whole entry it has received (sequence number, checksum), writes them
with one write (O_DSYNC) per batch,
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
from journal.format import FLAG_WRITE_START, SEGMENT_HEADER, frame
from journal.layout import segment_name
from journal.storage import FileHandle, OsFile, OsStorage, Storage, join
from journal.writer import SegmentWriter

# Parent -> child: one message per entry, in sequence order (the child numbers them).
MESSAGE_HEADER = struct.Struct("<IH")  # payload length, entry type code
CONTROL_ROTATE = 0xFFFF  # payload: u64 seq; the parent has created segment <seq>: append there
ACK = struct.Struct("<qq")  # durable seq, commits so far; seq -1: failure, then a message
READ_SIZE = 1 << 20

_unpack_message = MESSAGE_HEADER.unpack_from
_unpack_seq = struct.Struct("<Q").unpack_from


def failure_ack(message: str) -> bytes:
    text = message.encode("utf-8", "replace")[:3000]  # one atomic pipe write
    return ACK.pack(-1, len(text)) + text


def serve(
    segment: SegmentWriter, durable: int, data_fd: int, ack_fd: int, window_s: float = 0.0
) -> None:
    commits = 0
    buf = bytearray()
    while True:
        chunk = os.read(data_fd, READ_SIZE)
        if window_s > 0 and chunk:
            # The flush window: more writers may join this batch (fewer, larger commits, each
            # entry waiting up to the window longer).
            time.sleep(window_s)
            while select.select([data_fd], [], [], 0)[0]:
                more = os.read(data_fd, READ_SIZE)
                chunk += more
                if not more or len(more) < READ_SIZE:
                    break
        buf += chunk
        off = 0
        records: list[bytes] = []
        end_of_buf = len(buf)
        while off + MESSAGE_HEADER.size <= end_of_buf:
            length, code = _unpack_message(buf, off)
            start = off + MESSAGE_HEADER.size
            end = start + length
            if end > end_of_buf:
                break
            off = end
            if code == CONTROL_ROTATE:
                if records:
                    segment.write(b"".join(records), durable - len(records) + 1)
                    commits += 1
                    records = []
                (seq,) = _unpack_seq(buf, start)
                # The parent created it: a header, nothing allocated after it yet.
                path = join(segment.root, segment_name(seq))
                segment.open_existing(path, seq, SEGMENT_HEADER.size, SEGMENT_HEADER.size)
            else:
                # Framing (the checksum) happens here, on this process's own core.
                durable += 1
                flags = 0 if records else FLAG_WRITE_START  # each batch is one write
                records.append(frame(durable, code, bytes(buf[start:end]), flags))
        if records:
            segment.write(b"".join(records), durable - len(records) + 1)
            commits += 1
        del buf[:off]
        if off:
            os.write(ack_fd, ACK.pack(durable, commits))
        if not chunk:
            return  # a partial message left in buf was never complete, so never acknowledged


def main() -> None:
    # The parent decides when this process ends (by closing the pipe): a Ctrl-C or SIGTERM sent
    # to the whole process group must not stop it before the records it holds are written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (
        storage_root, root, segment_size, first_seq, size, allocated, preallocate, handle,
        durable, data_fd, ack_fd, window_s,
    ) = sys.argv[1:13]  # fmt: skip
    storage: Storage
    if storage_root.startswith(STORAGE_FD_PREFIX):
        # Storage in the parent's memory (the crash simulator), served over a socket.
        from journal.remote_storage import RemoteFile, RemoteStorage

        storage = remote = RemoteStorage(int(storage_root[len(STORAGE_FD_PREFIX) :]))
    else:
        storage = OsStorage(storage_root)
    segment = SegmentWriter(
        storage, root, int(segment_size), None, int(first_seq), int(size),
        preallocate=int(preallocate),
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
                opened = OsFile(int(handle), path, sync_writes=True)
            else:
                opened = RemoteFile(remote, int(handle), path)
            segment.adopt(opened, int(first_seq), int(size), int(allocated))
        serve(segment, int(durable), int(data_fd), ack, float(window_s))
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

"""Start-up replay with the log's records checked in a second process.

Why: replaying a large log costs about as much in checking its records (record headers,
checksums, msgpack framing) as in applying them, and at start-up the machine's other cores are
idle. The child runs ``SegmentScan`` (the one decoder of the log) over each segment, a step at
a time, and streams back what replay needs, in chunks: the records' type codes and offsets, and
their payloads back to back. It checks that each payload is exactly one msgpack object, so this
process can decode a whole chunk with one streaming Unpacker and apply the field lists as they
come. Each
segment's stream ends with its ``ScanEnd``, so torn tails and damage are judged exactly as
in-process replay judges them.

Messages (child -> parent), little-endian; each starts with ``MESSAGE`` (kind, a, b, c, d):

    CHUNK  a=first seq, b=count, c=payload bytes; then count u16 type codes, count u64 record
           offsets, the payloads. The records are consecutive in sequence.
    RAW    a=seq, b=type code, c=payload bytes, d=offset; then the payload: a record whose
           payload is not one msgpack object, for the parent's slow path to judge.
    END    a=offset, b=size, c=last seq, d=later valid offset + 1 (0: none); then a u64 length
           and the reason (UTF-8, empty for a clean end). One per segment, in order.
    FAIL   a=length; then the child's error message. The child stops.

Records at or below the replay's starting point are checked but not sent.
"""

from __future__ import annotations

import fcntl
import gc
import itertools
import logging
import operator
import os
import struct
import subprocess
import sys
from array import array
from collections.abc import Callable
from typing import Any, BinaryIO

import msgpack

from journal import fsnames
from journal.child import child_argv
from journal.errors import JournalError
from journal.format import ScanEnd, SegmentScan, payload_bounds

log = logging.getLogger(__name__)

MESSAGE = struct.Struct("<BQQQQ")
_U64 = struct.Struct("<Q")
CHUNK, RAW, END, FAIL = 1, 2, 3, 4
STEP_BYTES = 192 << 10  # of segment checked per chunk sent
# Below this many bytes of log to replay, starting a process costs more than it saves.
SCAN_IN_CHILD_ABOVE = 4 << 20
PIPE_SIZE = 1 << 20


# (seq, type code, payload, offset): replay of one record the fast path does not take.
Visit = Callable[[int, int, Any, int], None]
# (seq, type code, decoded fields, offset, the error the fast path raised or None); raises
# only JournalError
SlowApply = Callable[[int, int, Any, int, "Exception | None"], None]


class ScanProcessFailed(Exception):
    """The child stopped without finishing; replay goes on in this process."""


# -- the child ---------------------------------------------------------------------------------


def _stream_segment(
    data: bytes, first_seq: int, after_seq: int, step_bytes: int, out: BinaryIO
) -> None:
    write = out.write
    scan = SegmentScan(data, first_seq)
    seq = first_seq  # of the first record of the next step
    while True:
        offsets, codes = array("Q"), array("H")
        end = scan.step(offsets, codes, step_bytes)
        skip = min(len(offsets), max(0, after_seq + 1 - seq))
        if skip < len(offsets):
            _send_records(write, data, seq + skip, offsets[skip:], codes[skip:], scan.off)
            out.flush()  # the parent applies this chunk while the next one is checked
        seq += len(offsets)
        if end is not None:
            break
    later = 0 if end.next_valid_offset is None else end.next_valid_offset + 1
    reason = end.reason.encode()
    write(MESSAGE.pack(END, end.offset, end.size, end.last_seq, later))
    write(_U64.pack(len(reason)) + reason)
    out.flush()


def _send_records(
    write: Callable, data: bytes, first: int, offsets: array, codes: array, next_offset: int
) -> None:
    """Records ``first``.. (at ``offsets``) as one chunk, or, when some payload is not exactly
    one msgpack object, that one raw, for the parent to judge, and the others still in chunks,
    in order."""
    starts_it, stops_it = payload_bounds(offsets, next_offset)
    starts, stops = array("Q", starts_it), array("Q", stops_it)
    # C-level loops throughout: this process's time per record decides replay's speed.
    parts = list(map(data.__getitem__, map(slice, starts, stops)))
    payloads = b"".join(parts)
    lengths = map(operator.sub, stops, starts)
    if _object_ends(payloads, len(parts)) == list(itertools.accumulate(lengths)):
        _send_chunk(write, first, codes, offsets, payloads)
        return
    start = 0
    for k, payload in enumerate(parts):
        try:
            msgpack.unpackb(payload)
            continue
        except Exception:
            pass
        if k > start:
            chunk = b"".join(parts[start:k])
            _send_chunk(write, first + start, codes[start:k], offsets[start:k], chunk)
        write(MESSAGE.pack(RAW, first + k, codes[k], len(payload), offsets[k]) + payload)
        start = k + 1
    if start < len(parts):
        _send_chunk(write, first + start, codes[start:], offsets[start:], b"".join(parts[start:]))


def _send_chunk(write: Callable, first: int, codes: array, offsets: array, payloads: bytes) -> None:
    write(MESSAGE.pack(CHUNK, first, len(codes), len(payloads), 0))
    write(codes.tobytes())
    write(offsets.tobytes())
    write(payloads)


def _object_ends(payloads: bytes, count: int) -> list[int]:
    """Where each of the first ``count`` msgpack objects of ``payloads`` ends (fewer if it holds
    fewer). The parent decodes a chunk as one stream: a payload that is not exactly one object
    would shift every later entry."""
    unpacker = msgpack.Unpacker()
    unpacker.feed(payloads)
    skip, tell = unpacker.skip, unpacker.tell
    ends: list[int] = []
    try:
        ends.extend(skip() or tell() for _ in range(count))
    except Exception:  # not msgpack, or fewer objects than records
        pass
    return ends


def main() -> None:
    gc.disable()  # nothing here forms cycles, and the lists of payloads would be rescanned
    out_fd, after_seq, step_bytes, *segments = sys.argv[1:]
    out = os.fdopen(int(out_fd), "wb", buffering=PIPE_SIZE)
    try:
        for path, first in zip(segments[::2], segments[1::2], strict=True):
            with open(path, "rb") as f:
                data = f.read()
            _stream_segment(data, int(first), int(after_seq), int(step_bytes), out)
    except BrokenPipeError:
        sys.exit(1)  # the parent stopped reading: it has what it needs, or is gone
    except BaseException as exc:  # the parent must not wait for segments that will not come
        text = (str(exc) or repr(exc)).encode("utf-8", "replace")
        out.write(MESSAGE.pack(FAIL, len(text), 0, 0, 0) + text)
        out.flush()
        sys.exit(1)


# -- the parent --------------------------------------------------------------------------------


class ScanProcess:
    """The child scanning ``segments`` (absolute path, first seq) in order, and this process's
    side of the stream: ``replay_segment`` applies the next segment's records."""

    def __init__(self, segments: list[tuple[str, int]], after_seq: int) -> None:
        read_fd, write_fd = os.pipe()
        try:
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # above /proc/sys/fs/pipe-max-size: the default size works too
            pass
        args = child_argv("journal.scan_process", str(write_fd), str(after_seq), str(STEP_BYTES))
        for path, first in segments:
            args += [path, str(first)]
        try:
            self._child = subprocess.Popen(args, pass_fds=(write_fd,), stdin=subprocess.DEVNULL)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._pipe: BinaryIO = os.fdopen(read_fd, "rb", buffering=PIPE_SIZE)
        self._unpacker = msgpack.Unpacker(ext_hook=fsnames.ext_hook)
        self.applied_seq = after_seq  # the last entry applied from the child's stream

    def _read(self, n: int) -> bytes:
        data = self._pipe.read(n)
        if len(data) != n:
            status = self._child.wait()
            raise ScanProcessFailed(f"the log scanning process ended (status {status})")
        return data

    def replay_segment(
        self, direct: dict[int, tuple[Callable[[list[Any]], None], int]], slow: SlowApply,
        visit: Visit,
    ) -> ScanEnd:  # fmt: skip
        """Applies the next segment's records and returns where its scan ended.

        ``direct[code]`` (function, field count) applies a field list of exactly that many
        fields; ``slow`` takes every other record, and those whose fast application raised;
        ``visit`` replays a record the child sent raw. Raises ScanProcessFailed if the child
        stops early: everything up to ``applied_seq`` has been applied.
        """
        read = self._read
        while True:
            kind, a, b, c, d = MESSAGE.unpack(read(MESSAGE.size))
            if kind == CHUNK:
                codes = array("H", read(2 * b))
                offsets = array("Q", read(8 * b))
                self._unpacker.feed(read(c))
                self._apply_chunk(a, codes, offsets, direct, slow)
                self.applied_seq = a + b - 1
            elif kind == RAW:
                visit(a, b, memoryview(read(c)), d)
                self.applied_seq = a
            elif kind == END:
                (length,) = _U64.unpack(read(_U64.size))
                reason = read(length).decode() if length else ""
                return ScanEnd(a, b, reason, d - 1 if d else None, c)
            elif kind == FAIL:
                message = read(a).decode(errors="replace")
                raise ScanProcessFailed(f"the log scanning process failed: {message}")
            else:
                raise ScanProcessFailed(f"the log scanning process sent message kind {kind}")

    def _apply_chunk(
        self, first: int, codes: array, offsets: array,
        direct: dict[int, tuple[Callable[[list[Any]], None], int]], slow: SlowApply,
    ) -> None:  # fmt: skip
        # Replay's hottest loop when the child scans: one iteration per entry.
        direct_get = direct.get
        pending = zip(iter(codes), self._unpacker, strict=False)  # the unpacker has no end
        seq = done = first - 1
        while True:
            try:
                for code, fields in pending:
                    seq += 1
                    shape = direct_get(code)
                    if shape is not None and type(fields) is list and len(fields) == shape[1]:
                        shape[0](fields)
                    else:
                        slow(seq, code, fields, offsets[seq - first], None)
                    done = seq
                return
            except JournalError:
                raise  # from ``slow``: it already says what is wrong and where
            except Exception as exc:
                if seq == done:  # the stream itself: the child and this process disagree
                    self.applied_seq = done
                    raise ScanProcessFailed(f"the scanned stream cannot be decoded: {exc}") from exc
                slow(seq, code, fields, offsets[seq - first], exc)
                done = seq

    def close(self) -> None:
        """Stops the child (it may still be scanning when replay stopped early) and reaps it."""
        if self._pipe.closed:
            return
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        self._pipe.close()

"""The on-disk record format of the journal log. docs/journal.md is the long form of this text.

A journal directory holds log segments named ``log-<first_seq:020d>.seg``. A segment starts with
a 24-byte header and is followed by records, back to back:

    segment header  = magic "SHOALJNL" (8) | format version u32 | features u32
                      | first_seq u64                                       little-endian
    record          = crc u32 | length u32 | seq u64 | type u16 | flags u16 | payload[length]

``payload`` is the msgpack encoding of the entry's fields (an array). ``crc`` is
``zlib.crc32(header[4:20] + payload, CRC_SEED) ^ CRC_MASK``: it covers the length, sequence
number and type as well as the payload, and because it is seeded and masked an all-zero region
never validates (the checksum of zeros is not zero, and length 0 is rejected anyway). Sequence
numbers start at 1 and increase by exactly one from record to record and across segments.

Reading stops at the first record that does not validate. Zeros from there to the end of the
file are the segment's preallocated end: it ended cleanly. Otherwise, in the last segment, it is
a *torn tail* when no later write reached the disk (a crash cut the last write short); it is
*corruption* when one did (bytes that were once durable have changed). In a segment whose
header has the WRITES_MARKED feature, the first record of every write carries FLAG_WRITE_START,
and "a later write" is a later valid record with that flag: a write over preallocated zeros may
reach the disk in any order of its pages, so records of the torn write itself can follow the
damage. In older segments any later valid record counts.
"""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

FORMAT_VERSION = 1
SEGMENT_MAGIC = b"SHOALJNL"
SEGMENT_HEADER = struct.Struct("<8sIIQ")
RECORD_HEADER = struct.Struct("<IIQHH")
HEADER_SIZE = RECORD_HEADER.size  # 20
CRC_SEED = 0x5348_4F41  # "SHOA"
CRC_MASK = 0xA282_EAD8
# A single entry is small; anything claiming more than this is garbage, not a record.
MAX_PAYLOAD = 16 * 1024 * 1024

_pack_header = RECORD_HEADER.pack
_unpack_header = RECORD_HEADER.unpack_from
_crc32 = zlib.crc32
_NONZERO = re.compile(rb"[^\x00]")


# Segment header features: the first record of every write carries FLAG_WRITE_START.
WRITES_MARKED = 1
# Record flags (covered by the checksum).
FLAG_WRITE_START = 1


def segment_header(first_seq: int) -> bytes:
    return SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION, WRITES_MARKED, first_seq)


_pack_tail = struct.Struct("<IQHH").pack  # the header after its crc field
_pack_crc = struct.Struct("<I").pack


def frame(seq: int, type_code: int, payload: bytes, flags: int = 0) -> bytes:
    """One framed record, ready to append."""
    tail = _pack_tail(len(payload), seq, type_code, flags)
    return _pack_crc(_crc32(payload, _crc32(tail, CRC_SEED)) ^ CRC_MASK) + tail + payload


def mark_write_start(records: bytes) -> bytes:
    """``records`` (framed, back to back) with the first one flagged as a write's start."""
    _crc, length, seq, type_code, flags = _unpack_header(records, 0)
    if flags & FLAG_WRITE_START:
        return records
    stop = HEADER_SIZE + length
    first = frame(seq, type_code, records[HEADER_SIZE:stop], flags | FLAG_WRITE_START)
    return first + records[stop:]


class Record(NamedTuple):
    seq: int
    type: int
    payload: bytes | memoryview
    offset: int  # of the record's header within its segment file


@dataclass(frozen=True, slots=True)
class ScanEnd:
    """Why scanning a segment stopped, and where."""

    offset: int  # first byte that is not part of a valid record (the next record goes here)
    size: int  # size of the segment file (zeros from offset on when clean)
    reason: str  # "" when the segment ended cleanly
    next_valid_offset: int | None  # a later valid record, which makes the damage corruption
    last_seq: int = 0  # of the last valid record (first_seq - 1 if there is none)

    @property
    def clean(self) -> bool:
        return not self.reason

    @property
    def torn(self) -> bool:
        return bool(self.reason) and self.next_valid_offset is None


class BadSegmentHeader(ValueError):
    pass


def parse_segment_header(data: bytes | memoryview) -> int:
    """The segment's first sequence number; raises BadSegmentHeader if the header is not ours."""
    if len(data) < SEGMENT_HEADER.size:
        raise BadSegmentHeader(f"segment header is {len(data)} bytes, expected 24")
    magic, version, _, first_seq = SEGMENT_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        raise BadSegmentHeader("segment does not start with the SHOALJNL magic")
    if version > FORMAT_VERSION:
        raise BadSegmentHeader(
            f"segment format version {version} is newer than this shoal reads ({FORMAT_VERSION})"
        )
    return int(first_seq)


def _record_at(buf: memoryview, off: int, expect_seq: int | None) -> tuple[int, int, int] | None:
    """(seq, type, length) of a valid record at ``off``, else None."""
    end = len(buf)
    if off + HEADER_SIZE > end:
        return None
    crc, length, seq, type_code, _flags = _unpack_header(buf, off)
    if length == 0 or length > MAX_PAYLOAD or off + HEADER_SIZE + length > end:
        return None
    if expect_seq is not None and seq != expect_seq:
        return None
    body = buf[off + 4 : off + HEADER_SIZE + length]
    if (_crc32(body, CRC_SEED) ^ CRC_MASK) != crc:
        return None
    return seq, type_code, length


class SegmentScan:
    """Checks a segment image record by record, in steps, so that what was checked can be used
    while the rest is still being checked. ``step`` appends each valid record's offset to
    ``offsets`` and its type code to ``codes``; a record's payload runs from its offset +
    HEADER_SIZE to the next offset (the last one's to ``ScanEnd.offset``).

    This is the one decoder of the log: replay, verify, dump, repair and fsck all use it.
    """

    def __init__(self, data: bytes, first_seq: int) -> None:
        self.data = data
        self.off = SEGMENT_HEADER.size
        self.expect = first_seq
        features = SEGMENT_HEADER.unpack_from(data)[2] if len(data) >= SEGMENT_HEADER.size else 0
        # What a record after damage must carry to prove a later write reached the disk.
        self.later_write_flags = FLAG_WRITE_START if features & WRITES_MARKED else 0

    def step(self, offsets: array, codes: array, max_bytes: int = 1 << 62) -> ScanEnd | None:
        """Checks the records that start in the next ``max_bytes``; returns the ScanEnd, saying
        where and why checking stopped, once there is nothing more to check."""
        data, off, expect = self.data, self.off, self.expect
        end = len(data)
        pause = off + max_bytes
        seed, mask, unpack, crc32 = CRC_SEED, CRC_MASK, _unpack_header, _crc32
        add_offset, add_code = offsets.append, codes.append
        # Replay speed depends on this loop: keep it free of work it does not need (headers are
        # unpacked from the bytes object, which struct reads faster than a memoryview, and a
        # checksum over a copied slice is cheaper than over a memoryview of one).
        while off < pause:
            body = off + HEADER_SIZE
            if body > end:
                break
            crc, length, seq, type_code, _flags = unpack(data, off)
            stop = body + length
            if seq != expect or stop > end or not 0 < length <= MAX_PAYLOAD:
                break
            if crc32(data[off + 4 : stop], seed) ^ mask != crc:
                break
            add_offset(off)
            add_code(type_code)
            off = stop
            expect = seq + 1
        else:
            if off < end:
                self.off, self.expect = off, expect
                return None
        self.off, self.expect = off, expect
        if off >= end or data.count(0, off) == end - off:
            # Zeros after the last record are the segment's preallocated end (journal/writer.py):
            # nothing was written there, which a torn write (garbage, a cut record) is not.
            return ScanEnd(off, end, "", None, expect - 1)
        buf = memoryview(data)
        reason = _diagnose(buf, off, expect)
        later = _find_later_record(buf, off + 1, expect, self.later_write_flags)
        return ScanEnd(off, end, reason, later, expect - 1)


def payload_bounds(offsets: array, next_offset: int) -> tuple[Iterator[int], Iterator[int]]:
    """The (start, stop) offsets of the payloads of the records a ``SegmentScan`` step found,
    given where the record after them starts (``SegmentScan.off`` after that step)."""
    if not offsets:
        return iter(()), iter(())
    starts = map(HEADER_SIZE.__add__, offsets)
    stops = itertools.chain(itertools.islice(offsets, 1, None), (next_offset,))
    return starts, stops


def scan_segment(
    data: bytes, first_seq: int, visit: Callable[[int, int, memoryview, int], object]
) -> ScanEnd:
    """Calls ``visit(seq, type, payload, offset)`` for each valid record of a segment image, in
    order, and returns a ScanEnd saying where and why scanning stopped (``SegmentScan``). An
    exception from ``visit`` stops the visits and propagates.
    """
    offsets, codes = array("Q"), array("H")
    end = SegmentScan(data, first_seq).step(offsets, codes)
    assert end is not None
    buf = memoryview(data)
    starts, stops = payload_bounds(offsets, end.offset)
    seq = first_seq
    for off, code, start, stop in zip(offsets, codes, starts, stops, strict=True):
        visit(seq, code, buf[start:stop], off)
        seq += 1
    return end


def iter_records(data: bytes, first_seq: int) -> Iterator[Record | ScanEnd]:
    """``scan_segment`` as a sequence: the valid Records, then the ScanEnd."""
    found: list[Record] = []
    end = scan_segment(data, first_seq, lambda *r: found.append(Record(*r)))
    yield from found
    yield end


def find_record(data: bytes, start: int, seq: int) -> int | None:
    """Offset of the first valid record at or after ``start`` that carries sequence number
    ``seq`` (repair uses it to find where a needed run of records resumes after damage)."""
    buf = memoryview(data)
    needle = struct.pack("<Q", seq)
    pos = start + 8
    while True:
        found = data.find(needle, pos)
        if found < 0:
            return None
        off = found - 8  # the sequence number is at bytes 8-15 of a record header
        if _record_at(buf, off, seq) is not None:
            return off
        pos = found + 1


def _diagnose(buf: memoryview, off: int, expect: int) -> str:
    end = len(buf)
    if off + HEADER_SIZE > end:
        return f"{end - off} trailing bytes, shorter than a record header"
    crc, length, seq, _t, _f = _unpack_header(buf, off)
    if length == 0:
        return "record with length 0 (zeroed region)"
    if length > MAX_PAYLOAD:
        return f"record length {length} is impossible"
    if off + HEADER_SIZE + length > end:
        return f"record of {length} bytes runs past the end of the file"
    if seq != expect:
        return f"sequence number {seq} where {expect} was expected"
    return "checksum mismatch"


def _find_later_record(buf: memoryview, start: int, expect: int, flags: int = 0) -> int | None:
    """Offset of any later record that validates with a plausible sequence number and carries
    ``flags``.

    Only runs on the failure path. A record that survived beyond a bad one means the bad one is
    not the cut-off end of the last write but damage to bytes that were once complete.
    """
    end = len(buf)
    max_seq = expect + (end - start) // (HEADER_SIZE + 1) + 1
    off = start
    while off + HEADER_SIZE < end:
        _crc, length, seq, _t, rflags = _unpack_header(buf, off)
        if length == 0:
            # No record's length (bytes 4-7) is 0: skip a run of zeros (a preallocated end) with
            # one search instead of byte by byte. No record starts more than 7 bytes before the
            # next nonzero byte.
            found = _NONZERO.search(buf, off + 4)
            if found is None:
                return None
            off = max(off + 1, found.start() - 7)
            continue
        if expect <= seq <= max_seq and 0 < length <= end - off - HEADER_SIZE:
            if rflags & flags == flags and _record_at(buf, off, None) is not None:
                return off
        off += 1
    return None

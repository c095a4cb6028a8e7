"""The record framing and entry encoding of the log (journal/format.py, journal/entries.py)."""

from __future__ import annotations

import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal import entries as E
from journal.errors import MalformedEntry, UnknownEntryType
from journal.format import (
    CRC_MASK,
    CRC_SEED,
    FLAG_WRITE_START,
    FORMAT_VERSION,
    HEADER_SIZE,
    RECORD_HEADER,
    SEGMENT_HEADER,
    BadSegmentHeader,
    Record,
    ScanEnd,
    find_record,
    frame,
    iter_records,
    mark_write_start,
    parse_segment_header,
    segment_header,
)

_payloads = st.binary(min_size=1, max_size=300)
_type_codes = st.integers(0, 0xFFFF)


def scan(data: bytes, first_seq: int) -> tuple[list[Record], ScanEnd]:
    items = list(iter_records(data, first_seq))
    end = items.pop()
    assert isinstance(end, ScanEnd) and all(isinstance(r, Record) for r in items)
    return items, end  # type: ignore[return-value]


def segment(first_seq: int, payloads: list[bytes], type_code: int = 2) -> tuple[bytes, list[int]]:
    """A segment image holding ``payloads`` as records, each written on its own (flagged as a
    write's start); also the offset of each record."""
    data = bytearray(segment_header(first_seq))
    offsets = []
    for i, payload in enumerate(payloads):
        offsets.append(len(data))
        data += frame(first_seq + i, type_code, payload, FLAG_WRITE_START)
    return bytes(data), offsets


# -- framing -------------------------------------------------------------------------------------


@given(
    first_seq=st.integers(1, 2**63),
    records=st.lists(st.tuples(_type_codes, _payloads), max_size=8),
)
def test_framing_round_trips(first_seq: int, records: list[tuple[int, bytes]]) -> None:
    data = bytearray(segment_header(first_seq))
    for i, (code, payload) in enumerate(records):
        data += frame(first_seq + i, code, payload)
    assert parse_segment_header(bytes(data)) == first_seq
    got, end = scan(bytes(data), first_seq)
    assert [(r.seq, r.type, bytes(r.payload)) for r in got] == [
        (first_seq + i, code, payload) for i, (code, payload) in enumerate(records)
    ]
    assert end.clean and not end.torn and end.offset == end.size == len(data)


def test_record_layout_is_the_documented_one() -> None:
    payload = b"\x93\x01\x02\x03"
    rec = frame(7, 5, payload)
    crc, length, seq, code, flags = RECORD_HEADER.unpack_from(rec)
    assert (length, seq, code, flags) == (len(payload), 7, 5, 0)
    assert rec[HEADER_SIZE:] == payload
    # The checksum covers length, sequence number and type as well as the payload.
    assert crc == zlib.crc32(rec[4:], CRC_SEED) ^ CRC_MASK
    assert len(segment_header(1)) == SEGMENT_HEADER.size == 24


@given(size=st.integers(0, 600), first_seq=st.integers(1, 10**6))
def test_an_all_zero_region_never_validates(size: int, first_seq: int) -> None:
    zeros = bytes(size)
    got, end = scan(segment_header(first_seq) + zeros, first_seq)
    # Zeros are the preallocated end of a segment: its clean end, where the next record goes.
    assert got == [] and end.clean and end.offset == SEGMENT_HEADER.size
    # Even where a zero sequence number would be expected, zeros are not a record.
    got, _ = scan(segment_header(0) + zeros, 0)
    assert got == []
    # Zeros after valid records end the segment cleanly, never as more records.
    data, _ = segment(first_seq, [b"a", b"bc"])
    got, end = scan(data + zeros, first_seq)
    assert len(got) == 2 and end.clean and (end.offset, end.size) == (len(data), len(data) + size)
    if size:
        # A write cut short inside the zeros (a partial record, garbage) is a torn tail ...
        cut = frame(first_seq + 2, 1, b"xyz")[: 1 + size % 22]
        if not any(cut):  # a cut that happens to be zeros is zeros, not a torn write
            cut = b"\xff" + cut[1:]
        got, end = scan(data + cut + zeros, first_seq)
        assert len(got) == 2 and end.torn and end.offset == len(data)
        # ... and zeros with a record after them are damage: that record was written once.
        later, _ = segment(first_seq, [b"a", b"bc", b"d"])
        got, end = scan(data + zeros + later[len(data) :], first_seq)
        assert len(got) == 2 and not end.clean and not end.torn


def test_length_zero_is_rejected_even_with_a_correct_checksum() -> None:
    tail = RECORD_HEADER.pack(0, 0, 1, 2, 0)[4:]
    crc = zlib.crc32(tail, CRC_SEED) ^ CRC_MASK
    data = segment_header(1) + crc.to_bytes(4, "little") + tail
    got, end = scan(data, 1)
    assert got == [] and end.torn and "length 0" in end.reason


@given(payloads=st.lists(_payloads, min_size=1, max_size=6), data=st.data())
def test_a_cut_anywhere_in_the_last_record_is_a_torn_tail(
    payloads: list[bytes], data: st.DataObject
) -> None:
    image, offsets = segment(10, payloads)
    last = offsets[-1]
    for cut in range(last, len(image)):
        got, end = scan(image[:cut], 10)
        assert [bytes(r.payload) for r in got] == payloads[:-1]
        if not any(image[last:cut]):  # nothing but zeros arrived: a clean (preallocated) end
            assert end.clean and end.offset == last
        else:
            assert end.torn and end.offset == last and end.next_valid_offset is None
    # The same with the rest of the record's range zeroed or overwritten with garbage.
    cut = data.draw(st.integers(last, len(image) - 1))
    fill = data.draw(st.binary(min_size=len(image) - cut, max_size=len(image) - cut))
    for damaged in (image[:cut] + bytes(len(image) - cut), image[:cut] + fill):
        if damaged == image:
            continue  # the "damage" rewrote the very bytes that were there
        got, end = scan(damaged, 10)
        assert [bytes(r.payload) for r in got] == payloads[:-1], damaged[last:]
        assert end.offset == last
        # Zeros alone where the record was are a preallocated end: none of the write arrived.
        assert end.clean if not any(damaged[last:]) else end.torn


@given(
    payloads=st.lists(_payloads, min_size=3, max_size=6),
    data=st.data(),
)
def test_a_flipped_byte_mid_log_with_valid_records_after_it_is_corruption(
    payloads: list[bytes], data: st.DataObject
) -> None:
    image, offsets = segment(1, payloads)
    victim = data.draw(st.integers(0, len(payloads) - 2))
    start = offsets[victim]
    end_of_victim = offsets[victim + 1]
    pos = data.draw(st.integers(start, end_of_victim - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(image)
    damaged[pos] ^= 1 << bit
    got, end = scan(bytes(damaged), 1)
    assert [bytes(r.payload) for r in got] == payloads[:victim]
    assert end.offset == start and not end.clean
    assert not end.torn, "damage followed by valid records must not pass for a torn tail"
    assert end.next_valid_offset is not None and end.next_valid_offset >= end_of_victim


def test_scan_end_reasons_name_the_problem() -> None:
    image, offsets = segment(1, [b"abc", b"def"])
    cases = {
        image[: offsets[1] + 5]: "trailing bytes",
        image[:-1]: "runs past the end",
        segment(1, [b"abc"])[0] + frame(5, 2, b"x"): "sequence number 5 where 2",
    }
    flipped = bytearray(image)
    flipped[-1] ^= 0xFF
    cases[bytes(flipped)] = "checksum mismatch"
    for damaged, reason in cases.items():
        _, end = scan(damaged, 1)
        assert reason in end.reason, (reason, end.reason)


def test_segment_header_checks() -> None:
    assert parse_segment_header(segment_header(42)) == 42
    with pytest.raises(BadSegmentHeader, match="24"):
        parse_segment_header(segment_header(1)[:23])
    with pytest.raises(BadSegmentHeader, match="magic"):
        parse_segment_header(b"X" + segment_header(1)[1:])
    newer = SEGMENT_HEADER.pack(b"SHOALJNL", FORMAT_VERSION + 1, 0, 1)
    with pytest.raises(BadSegmentHeader, match="newer"):
        parse_segment_header(newer)


# -- entries -------------------------------------------------------------------------------------

_SAMPLES: list[E.Entry] = [
    E.MkDir(2, 1, "d", 0o755, 0, 0, 10),
    E.CreateFile(3, 2, "f\u00e9", 0o644, 1000, 1000, 11),
    E.CompleteFile(3, 1 << 40, 1 << 22, 12),
    E.SetAttr(3, 13, mode=0o600, pinned=True, media=["ssd"], ttl_ms=5, ttl_action="free"),
    E.SetAttr(3, 14),
    E.Rename(3, 2, "f\u00e9", 1, "g", 15, replaced=9),
    E.Delete(2, 1, "d", 16),
    E.Symlink(4, 1, "l", "../t", 0, 0, 17),
    E.AddMount(2, "s3://b/p", {"region": "x"}, True, "cred", 18),
    E.RemoveMount(2, 19),
    E.UfsFingerprint(3, "etag", 5, 6, 20),
    E.BlockCached(3, 1, 0, "mem", 4096, 0xDEADBEEF, 21),
    E.BlockMoved(3, 1, 0, "ssd", 22),
    E.BlockRemoved(3, 1, 0, 23),
    E.PersistRequested(3, 1, 24),
    E.Persisted(3, 1, "etag2", 25),
    E.ContentCommitted(3, 2, 5000, 4096, True, 26),
    E.StoreCopy(3, E.STALE_COPY, 27),
    E.StoreMoved(3, 28),
    E.Link(3, 1, "h", 27),
    E.Delete(4, 1, "open", 28, orphan=True),
    E.Rename(5, 1, "new", 1, "open2", 29, replaced=6, orphan=True),
    E.OrphanReleased(4, 30),
    E.CreateFile(5, 1, "null", 0o20600, 0, 0, 28, 259),  # a character device
    E.SetXattr(3, "user.k", bytes(range(256)), 27),
    E.SetXattr(3, "user.k", None, 28),
    E.SetAttr(3, 29, atime=30),
    E.Accessed(3, 31),
    E.PathConfSet("/data/caf\udce9", {"write_type": "ASYNC_THROUGH", "ttl": None}, 32),
]


def test_a_delete_or_rename_written_before_orphans_existed_orphans_nothing() -> None:
    old = msgpack.packb([2, 1, "d", 16])
    assert E.decode(E.TYPE_CODES[E.Delete], old) == E.Delete(2, 1, "d", 16, False)
    old = msgpack.packb([3, 2, "f", 1, "g", 15, 9, None])
    assert E.decode(E.TYPE_CODES[E.Rename], old).orphan is False


def test_a_create_written_before_rdev_existed_decodes_as_a_regular_file_entry() -> None:
    old = msgpack.packb([3, 2, "f", 0o644, 0, 0, 11])  # seven fields: no rdev
    assert E.decode(E.TYPE_CODES[E.CreateFile], old) == E.CreateFile(3, 2, "f", 0o644, 0, 0, 11, 0)


def test_every_entry_type_has_a_sample() -> None:
    assert {type(e) for e in _SAMPLES} == set(E.TYPE_CODES)


@pytest.mark.parametrize("entry", _SAMPLES, ids=lambda e: type(e).__name__)
def test_entries_round_trip_through_a_record(entry: E.Entry) -> None:
    code = E.type_code(entry)
    (rec,), end = scan(segment_header(1) + frame(1, code, E.encode(entry)), 1)
    assert end.clean
    decoded = E.decode(rec.type, rec.payload, where="test")
    assert type(decoded) is type(entry) and decoded == entry


def test_type_codes_are_unique_and_stable() -> None:
    # Part of the on-disk format: a change here makes every existing journal unreadable.
    assert [E.TYPE_CODES[cls] for cls in (E.MkDir, E.CreateFile, E.Rename, E.Persisted)] == [
        1,
        2,
        5,
        15,
    ]
    assert len(set(E.TYPE_CODES.values())) == len(E.TYPE_CODES)


def test_an_older_entry_without_appended_fields_decodes_with_defaults() -> None:
    short = msgpack.packb([3, 2, "a", 1, "b", 99])  # a Rename from before `replaced` existed
    assert E.decode(5, short) == E.Rename(3, 2, "a", 1, "b", 99, None)


@given(code=st.integers(0, 0xFFFF).filter(lambda c: c not in E.BY_CODE))
@settings(max_examples=50)
def test_unknown_entry_type_raises_with_an_upgrade_hint(code: int) -> None:
    with pytest.raises(UnknownEntryType) as info:
        E.decode(code, msgpack.packb([1, 2, 3]), where="seg at offset 24")
    assert info.value.code == code
    message = str(info.value)
    assert "seg at offset 24" in message and str(code) in message and "upgrade" in message


def test_extra_fields_from_a_newer_version_are_refused_clearly() -> None:
    newer = msgpack.packb([*E.MkDir(2, 1, "d", 0o755, 0, 0, 10), "new-field"])
    with pytest.raises(MalformedEntry) as info:
        E.decode(E.TYPE_CODES[E.MkDir], newer, where="log-1.seg at offset 24 (entry 1)")
    message = str(info.value)
    assert message.startswith("log-1.seg at offset 24 (entry 1): MkDir has 8 fields")
    assert "knows 7" in message and "newer version" in message


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb({"id": 1}), "not an array"),
        (msgpack.packb([2, 1, "d"]), "has 3 fields, needs 7"),
    ],
)
def test_malformed_payloads_are_refused(payload: bytes, problem: str) -> None:
    with pytest.raises(MalformedEntry, match=problem):
        E.decode(E.TYPE_CODES[E.MkDir], payload, where="here")


def test_which_later_record_makes_damage_corruption() -> None:
    # Three records in one write, then a fourth in a write of its own (flagged as its start).
    one_write = b"".join(frame(s, 2, bytes([s]) * 40) for s in (1, 2, 3))
    assert mark_write_start(one_write) != one_write
    assert mark_write_start(mark_write_start(one_write)) == mark_write_start(one_write)
    second = frame(4, 2, b"d" * 40, FLAG_WRITE_START)
    rec = HEADER_SIZE + 40
    for header, torn_by_own_records in ((segment_header(1), True), (LEGACY_HEADER, False)):
        image = header + mark_write_start(one_write)
        damaged = image[:24] + bytes(rec) + image[24 + rec :]  # record 1 lost, 2 and 3 there
        _, end = scan(damaged, 1)
        # Marked segments: records of the damaged write itself may follow (its pages reached
        # the disk in any order), so the damage is a torn tail. Older segments: corruption.
        assert end.offset == 24 and end.torn == torn_by_own_records
        _, end = scan(damaged + second, 1)  # a later write made it: damage either way
        assert not end.torn and end.next_valid_offset is not None


# A segment header from before writes were marked (its features field was reserved, 0).
LEGACY_HEADER = SEGMENT_HEADER.pack(b"SHOALJNL", 1, 0, 1)


def test_find_record_finds_a_valid_record_by_sequence_number_after_damage() -> None:
    data, offsets = segment(10, [b"a" * 5, b"b" * 9, b"c" * 3, b"d"])
    damaged = bytearray(data)
    damaged[offsets[1] + HEADER_SIZE] ^= 0xFF  # entry 11's payload
    # A look-alike: the sequence number 12 in a payload is not a record.
    decoy = frame(99, 2, (12).to_bytes(8, "little") * 3)
    image = bytes(damaged) + decoy
    assert find_record(image, offsets[1], 12) == offsets[2]
    assert find_record(image, offsets[1], 11) is None  # damaged
    assert find_record(image, 0, 13) == offsets[3]
    assert find_record(image, offsets[3] + 1, 13) is None

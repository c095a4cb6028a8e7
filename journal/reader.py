"""Reading the log: the segments after a sequence number, in order, with every continuity check.

One reader serves start-up replay, ``shoal journal replay/verify/dump`` and repair. It raises
``JournalCorrupt`` naming the file, the offset and what to run next for anything it cannot
trust, and reports (rather than repairs) a torn tail at the end of the last segment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from journal import entries, fsnames, scan_process
from journal.errors import JournalCorrupt, JournalError
from journal.format import BadSegmentHeader, Record, parse_segment_header, scan_segment
from journal.layout import Listing, segment_name
from journal.scan_process import ScanProcess, ScanProcessFailed
from journal.storage import OsStorage, Storage, join

log = logging.getLogger(__name__)
_pack = fsnames.packer()  # a decoded entry's fields, packed again for the slow path

VERIFY_HINT = "run `shoal journal verify` for a full report"
MISSING_HINT = (
    "restore the file from a backup, or run `shoal journal repair --force` to accept the loss"
)


@dataclass(frozen=True)
class TornTail:
    path: str
    offset: int  # where the valid part of the segment ends
    size: int
    reason: str


@dataclass
class ReadResult:
    last_seq: int  # the last valid entry in the log (or after_seq if there is none after it)
    applied: int  # entries handed to the callback
    tail: TornTail | None  # a torn end of the last segment, to be truncated before appending
    segment_sizes: dict[str, int]  # path -> file size
    segment_ends: dict[str, int] = field(default_factory=dict)  # path -> end of its last record
    # The last record of the last segment read (its first_seq - 1 if it has none; 0 with no
    # segment): appending may reuse that segment only if this is the state's last entry.
    log_end_seq: int = 0


def _lost_hint(path: str, offset: int) -> str:
    cut = f"truncate {path} at offset {offset}" if offset else f"set {path} aside"
    return (
        f"{VERIFY_HINT}; `shoal journal repair --force` would {cut} (keeping a copy) and drop"
        " every entry after it"
    )


def _header_problem(data: bytes, exc: BadSegmentHeader) -> str:
    if data and not any(data):
        return f"the segment is all zeros ({len(data)} bytes): its header and records are gone"
    return str(exc)


def _skip(seq: int, code: int, payload: memoryview, offset: int) -> None:
    pass


def _observed(
    visit: Callable[[int, int, memoryview, int], object],
    on_record: Callable[[Record, str], None],
    path: str,
) -> Callable[[int, int, memoryview, int], object]:
    def both(seq: int, code: int, payload: memoryview, offset: int) -> None:
        on_record(Record(seq, code, payload, offset), path)
        visit(seq, code, payload, offset)

    return both


class _Replayer:
    """Decodes and applies the records of one segment.

    The common case — a known type whose payload is an array of exactly its fields — skips
    building the entry: ``fast[code]`` applies the decoded field list directly. Anything else
    goes through entries.decode, which explains what is wrong, and ``on_entry``.
    """

    def __init__(
        self, path: str, after_seq: int, on_entry: Callable[[Any, int], None],
        fast: dict[int, Callable[[list[Any]], None]] | None,
    ) -> None:  # fmt: skip
        self.path = path
        self.after_seq = after_seq
        self.on_entry = on_entry
        counts = {code: cls_n[1] for code, cls_n in entries.SHAPES.items()}
        self.direct = {
            code: (fn, counts[code]) for code, fn in (fast or {}).items() if code in counts
        }

    def visit(self) -> Callable[[int, int, memoryview, int], None]:
        """The scan_segment callback (a closure: one call per record)."""
        after_seq = self.after_seq
        direct_get = self.direct.get
        unpackb = msgpack.unpackb
        names = fsnames.ext_hook
        slow, failed = self.slow_payload, self.fast_failed

        def replay(seq: int, code: int, payload: memoryview, offset: int) -> None:
            if seq <= after_seq:
                return
            try:
                fields = unpackb(payload, ext_hook=names)  # a list: the defaults parse fastest
                shape = direct_get(code)
                if shape is not None and type(fields) is list and len(fields) == shape[1]:
                    shape[0](fields)
                    return
            except Exception as exc:
                failed(seq, offset, exc)
            slow(seq, code, payload, offset)

        return replay

    def fast_failed(self, seq: int, offset: int, exc: Exception) -> None:
        """Decoding or fast application of entry ``seq`` raised ``exc``: raises what start-up
        must stop with, or returns when the slow path (entries.decode, which says what is
        wrong with a payload) is to take the entry."""
        if isinstance(exc, JournalError):
            raise exc
        if not isinstance(exc, (ValueError, msgpack.UnpackException)):
            raise JournalCorrupt(
                self.path, offset, f"entry {seq} cannot be applied: {exc}", VERIFY_HINT
            ) from exc

    def slow_payload(self, seq: int, code: int, payload: bytes | memoryview, offset: int) -> None:
        path = self.path
        entry = entries.decode(code, payload, where=f"{path} at offset {offset}")
        try:
            self.on_entry(entry, seq)
        except JournalError:
            raise
        except Exception as exc:
            raise JournalCorrupt(
                path,
                offset,
                f"entry {seq} ({type(entry).__name__}) cannot be applied: {exc}",
                VERIFY_HINT,
            ) from exc

    def slow_fields(
        self, seq: int, code: int, fields: Any, offset: int, failed: Exception | None
    ) -> None:
        """A record decoded by the scanning process that the fast path did not take, or that
        raised ``failed`` there: handled as ``visit`` handles it."""
        if failed is not None:
            self.fast_failed(seq, offset, failed)
        self.slow_payload(seq, code, _pack(fields), offset)


def _scan_process_for(
    storage: Storage, segments: list[tuple[int, str]], after_seq: int, only_if_long: bool
) -> ScanProcess | None:
    """A process that checks the records of ``segments`` while this one applies them, when the
    log is on real files (and, ``only_if_long``, long enough to be worth a process)."""
    if not isinstance(storage, OsStorage) or not segments:
        return None
    try:
        size = sum(storage.size(path) for _, path in segments)
    except OSError:
        return None  # reading the segments will say what is wrong
    if only_if_long and size < scan_process.SCAN_IN_CHILD_ABOVE:
        return None
    try:
        paths = [(join(storage.root, path), first) for first, path in segments]
        return ScanProcess(paths, after_seq)
    except OSError as exc:
        log.warning("replaying without a log scanning process: %s", exc)
        return None


def read_log(
    storage: Storage,
    listing: Listing,
    after_seq: int,
    on_entry: Callable[[Any, int], None] | None,
    *,
    on_record: Callable[[Record, str], None] | None = None,
    fast: dict[int, Callable[[list[Any]], None]] | None = None,
    scanner: str = "auto",
) -> ReadResult:
    """Hands every entry with seq > after_seq to ``on_entry(entry, seq)`` in order.

    ``on_record(record, path)`` (if given) sees every valid record of the segments read, decoded
    or not. ``fast`` (type code -> function of the decoded field list) takes the place of
    ``on_entry`` for entries of those types that have exactly their fields; it is not told the
    sequence number, so the caller records ``result.last_seq`` itself. With ``fast`` and no
    ``on_record``, the records can be checked by a second process (journal/scan_process.py)
    while this one applies them: ``scanner`` "process" does that for logs on real files, "auto"
    when they are longer than scan_process.SCAN_IN_CHILD_ABOVE, "inline" never.

    Raises JournalCorrupt on a gap, a lost segment, a damaged header or mid-log damage,
    and UnknownEntryType/MalformedEntry (with their location) on entries it cannot decode.
    """
    segments = listing.segments
    result = ReadResult(after_seq, 0, None, {})
    firsts = {first for first, _ in segments}
    newest = segments[-1][0] if segments else 0
    if listing.seen is not None and listing.seen > newest and listing.seen not in firsts:
        raise JournalCorrupt(
            segment_name(listing.seen),
            None,
            f"segment {segment_name(listing.seen)} is missing (the journal's `seen` file says it"
            f" was created; the newest present starts at {newest or 'none'})",
            MISSING_HINT,
        )
    start = 0
    for i, (first, _) in enumerate(segments):
        if first <= after_seq + 1:
            start = i
    if segments and segments[start][0] > after_seq + 1:
        first, path = segments[start]
        raise JournalCorrupt(
            path,
            None,
            f"the log has a gap: it starts at entry {first} but entry {after_seq + 1} is needed"
            " (a segment is missing)",
            "restore the missing segment, or start from a checkpoint that covers the gap",
        )
    process = None
    if on_entry is not None and on_record is None and fast and scanner != "inline":
        process = _scan_process_for(storage, segments[start:], after_seq, scanner == "auto")
    try:
        result = _read_segments(storage, listing, start, result, on_entry, on_record, fast, process)
    finally:
        if process is not None:
            process.close()
    _check_followed(listing, result)
    return result


def _check_followed(listing: Listing, result: ReadResult) -> None:
    """Raises JournalCorrupt when the segment that followed the newest checkpoint is gone.

    A checkpoint at entry S is written only after the segment starting at S + 1 was created
    durably (Journal.checkpoint rotates first), and no segment is deleted while a later one is
    the newest. So a log that neither has that segment nor holds entry S + 1 lost its newest
    segment, even when the `seen` marker was lost with it.
    """
    if not listing.checkpoints:
        return
    ckpt = listing.checkpoints[-1]
    newest = listing.segments[-1][0] if listing.segments else 0
    if newest > ckpt.seq or result.log_end_seq > ckpt.seq:
        return
    name = segment_name(ckpt.seq + 1)
    ends = f"ends at entry {result.log_end_seq}" if listing.segments else "has no segment"
    raise JournalCorrupt(
        name,
        None,
        f"segment {name} is missing (checkpoint {ckpt.path} at entry {ckpt.seq} was written"
        f" after it was created; the log {ends})",
        MISSING_HINT,
    )


def _read_segments(
    storage: Storage, listing: Listing, start: int, result: ReadResult,
    on_entry: Callable[[Any, int], None] | None, on_record: Callable[[Record, str], None] | None,
    fast: dict[int, Callable[[list[Any]], None]] | None, process: ScanProcess | None,
) -> ReadResult:  # fmt: skip
    """read_log's walk over the segments from ``start`` on."""
    segments = listing.segments
    after_seq = result.last_seq
    expect = after_seq + 1
    for i in range(start, len(segments)):
        first, path = segments[i]
        last_segment = i == len(segments) - 1
        data = storage.read(path)
        result.segment_sizes[path] = len(data)
        # A segment's header is fsynced before `seen` names it and before anything is written
        # after it; a newest segment of at most a header that `seen` does not name yet was cut
        # short while being created, so whatever the cut left in its header (zeros, garbage)
        # is a torn tail. Any other bad header (one `seen` names, or one followed by more
        # bytes: a zeroed segment) was durable once: damage, never silently cut.
        unfinished = (
            last_segment and len(data) <= 24 and (listing.seen is None or first > listing.seen)
        )
        try:
            header_seq = parse_segment_header(data)
        except BadSegmentHeader as exc:
            if unfinished:
                result.tail = TornTail(path, 0, len(data), f"segment header incomplete: {exc}")
                return result
            raise JournalCorrupt(path, 0, _header_problem(data, exc), _lost_hint(path, 0)) from exc
        if header_seq != first and unfinished:
            result.tail = TornTail(path, 0, len(data), "segment header incomplete: wrong first seq")
            return result
        if header_seq != first:
            raise JournalCorrupt(
                path, 0, f"segment header says it starts at entry {header_seq}", VERIFY_HINT
            )
        if i > start and first != expect:
            raise JournalCorrupt(
                path,
                None,
                f"sequence gap: the previous segment ends at entry {expect - 1}, this one"
                f" starts at {first}",
                "a segment between them is missing; restore it from a backup",
            )
        if i == start:
            expect = first
        end = None
        if on_entry is None:
            visit: Callable[[int, int, memoryview, int], object] = _skip
        else:
            replayer = _Replayer(path, after_seq, on_entry, fast)
            visit = replayer.visit()
            if process is not None:
                try:
                    end = process.replay_segment(replayer.direct, replayer.slow_fields, visit)
                except ScanProcessFailed as exc:
                    log.warning("%s; replaying %s in this process", exc, path)
                    replayer.after_seq = process.applied_seq
                    visit = replayer.visit()
                    process.close()
                    process = None
        if on_record is not None:
            visit = _observed(visit, on_record, path)
        if end is None:
            end = scan_segment(data, first, visit)
        result.log_end_seq = end.last_seq
        result.segment_ends[path] = end.offset
        if end.last_seq >= first:
            expect = end.last_seq + 1
            if on_entry is not None:
                result.applied += max(0, end.last_seq - max(after_seq, first - 1))
        result.last_seq = max(result.last_seq, expect - 1)
        if end.clean:
            continue
        if last_segment and end.torn:
            result.tail = TornTail(path, end.offset, end.size, end.reason)
            return result
        raise JournalCorrupt(path, end.offset, end.reason, _lost_hint(path, end.offset))
    return result

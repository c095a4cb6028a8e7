"""The log cut before an entry whose data a power loss took (journal/datasync.py says why one
can be there).

Only the newest segment can hold such an entry: a segment is synced before the log moves on
from it, and every sync of the log syncs the data first. The caller (the engine) judges the
entries that name data: which is the first whose bytes are not what it says. The log is cut
there like a torn tail — the segment copied aside first, so no byte is destroyed — and what
stays is a prefix of the acknowledged operations holding every durable one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from journal import entries
from journal.format import (
    FLAG_WRITE_START,
    RECORD_HEADER,
    SEGMENT_HEADER,
    WRITES_MARKED,
    Record,
    iter_records,
)
from journal.layout import Listing
from journal.reader import TornTail
from journal.storage import Storage

# The engine's judge: the state replay built and the entries naming data replayed after its
# checkpoint, (seq, entry) in log order; the seq of the first whose data is unsound, or None.
DataCheck = Callable[[Any, list[tuple[int, Any]]], "int | None"]


def unsound_tail(
    storage: Storage,
    listing: Listing,
    after_seq: int,
    codes: frozenset[int],
    state: Any,
    check: DataCheck,
) -> TornTail | None:
    """Where the newest segment must be cut (None: every entry naming data has its data)."""
    if not listing.segments or not codes:
        return None
    first, path = listing.segments[-1]
    data = storage.read(path)
    records = [rec for rec in iter_records(data, first) if isinstance(rec, Record)]
    # Every record before the last write start was synced, and each sync of the log synced
    # the data first: a block named there that is not what its entry says was damaged after
    # it was durable (fsck's ordered-data reports it), never taken by a power loss — cutting
    # there would drop durable operations. Only the records from the last write start on
    # may name data a power loss took.
    since = _last_write_start(data, records)
    named: list[tuple[int, Any]] = []
    offsets: dict[int, int] = {}
    for rec in records:
        if rec.seq > after_seq and rec.offset >= since and rec.type in codes:
            named.append((rec.seq, entries.decode(rec.type, rec.payload, where=path)))
            offsets[rec.seq] = rec.offset
    if not named:
        return None
    bad = check(state, named)
    if bad is None or bad not in offsets:
        return None
    reason = f"entry {bad} names cached data that is not on disk (a power loss took it)"
    return TornTail(path, offsets[bad], len(data), reason)


def _last_write_start(data: bytes, records: list[Record]) -> int:
    """Offset of the newest record that starts a write (the first after a sync), 0 when the
    segment does not mark writes (every record may then be unsynced)."""
    if len(data) < SEGMENT_HEADER.size or not SEGMENT_HEADER.unpack_from(data)[2] & WRITES_MARKED:
        return 0
    for rec in reversed(records):
        if RECORD_HEADER.unpack_from(data, rec.offset)[4] & FLAG_WRITE_START:
            return rec.offset
    return 0

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
from journal.format import Record, iter_records
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
    named: list[tuple[int, Any]] = []
    offsets: dict[int, int] = {}
    for rec in iter_records(data, first):
        if not isinstance(rec, Record):
            break
        if rec.seq > after_seq and rec.type in codes:
            named.append((rec.seq, entries.decode(rec.type, rec.payload, where=path)))
            offsets[rec.seq] = rec.offset
    if not named:
        return None
    bad = check(state, named)
    if bad is None or bad not in offsets:
        return None
    reason = f"entry {bad} names cached data that is not on disk (a power loss took it)"
    return TornTail(path, offsets[bad], len(data), reason)

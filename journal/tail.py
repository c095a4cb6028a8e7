"""Cutting a torn tail off the log, shared by start-up and `shoal journal repair`.

A torn tail is the end of the last segment that a crash cut short: nothing in it was ever
acknowledged. It is cut off before anything is appended (or later records would land behind
garbage), after the segment is copied aside, so no byte is ever destroyed.
"""

from __future__ import annotations

from journal.layout import SEEN_FILE, Listing, broken_name, list_journal
from journal.reader import TornTail
from journal.storage import Storage, join, truncate_durably, unlink_durably, write_durably


def truncate_torn_tail(storage: Storage, root: str, tail: TornTail) -> str:
    """Copies the damaged segment aside, then cuts it back to its last valid record (or removes
    it when not even its header is complete), so nothing is ever appended behind garbage.
    Returns the path of the copy."""
    data = storage.read(tail.path)
    aside = broken_name(storage, tail.path)
    write_durably(storage, aside, data)
    if tail.offset == 0:
        unlink_durably(storage, [tail.path])
        first = first_seq_of(tail.path)
        listing = list_journal(storage, root)
        if listing.seen is not None and listing.seen == first:
            # `seen` must not name a segment we removed on purpose, or the next start-up would
            # report it as lost.
            write_seen(storage, root, listing)
    else:
        truncate_durably(storage, tail.path, tail.offset)
    return aside


def first_seq_of(path: str) -> int:
    return int(path.rsplit("/", 1)[-1][4:24])


def write_seen(storage: Storage, root: str, listing: Listing) -> int:
    newest = listing.segments[-1][0] if listing.segments else 0
    write_durably(storage, join(root, SEEN_FILE), f"{newest}\n".encode())
    return newest

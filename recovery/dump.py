"""`shoal journal dump`: the entries of the log as text, JSON lines or an SQLite table.

Entries are read with the start-up reader, so a dump shows exactly what a replay would apply.
Records are handed out as they are read: on damage the valid entries before it have already
been written when the error is raised, and a torn tail is reported, not dumped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from journal import entries
from journal.format import Record
from journal.layout import list_journal
from journal.reader import TornTail, read_log
from journal.storage import Storage

# Columns of the SQLite export besides seq, type, time and fields: the fields most entry types
# share, so `WHERE id = ?` or `WHERE parent = ?` works without JSON functions.
COMMON_FIELDS = ("id", "parent", "name")
TABLE = "entries"


def type_names() -> list[str]:
    """Entry type names in type-code order."""
    return [cls.__name__ for cls in sorted(entries.TYPE_CODES, key=entries.TYPE_CODES.__getitem__)]


def parse_types(spec: str) -> set[type]:
    """The entry classes named in a comma-separated list; ValueError names the valid ones."""
    wanted = {name.strip() for name in spec.split(",") if name.strip()}
    unknown = sorted(wanted - set(entries.BY_NAME))
    if unknown or not wanted:
        raise ValueError(
            f"unknown entry type {', '.join(unknown) or '(none given)'}; valid types are:"
            f" {', '.join(type_names())}"
        )
    return {entries.BY_NAME[name] for name in wanted}


def jsonable(value: Any) -> Any:
    """``value`` with bytes made JSON-safe ({"bytes_hex": ...}); entries hold msgpack types."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes_hex": bytes(value).hex()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def _json(value: Any) -> str:
    # ensure_ascii: a name may hold lone surrogates (undecodable bytes); escaped, they survive.
    return json.dumps(jsonable(value), separators=(",", ":"))


def entry_dict(seq: int, entry: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": seq}
    out.update(entries.to_dict(entry))
    return out


def text_line(seq: int, entry: Any) -> str:
    parts = [str(seq), type(entry).__name__]
    for key, value in entry._asdict().items():
        if key == "mode" and isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"mode={value:#o}")
        else:
            parts.append(f"{key}={_json(value)}")
    return " ".join(parts)


def jsonl_line(seq: int, entry: Any) -> str:
    return _json(entry_dict(seq, entry))


class LineSink:
    """Writes one line per entry to a text stream."""

    def __init__(self, out: IO[str], fmt: Callable[[int, Any], str]) -> None:
        self.out = out
        self.fmt = fmt

    def __call__(self, seq: int, entry: Any) -> None:
        self.out.write(self.fmt(seq, entry) + "\n")

    def close(self) -> None:
        self.out.flush()


def sql_value(value: Any) -> Any:
    """``value`` for an SQLite column: a str that is not UTF-8 (a name's undecodable bytes)
    as a BLOB of its bytes, a structure as JSON."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
        return value
    if isinstance(value, bytes | int | float) or value is None:
        return value
    return _json(value)


class SqliteSink:
    """Writes entries into table ``entries`` of an SQLite database, replacing that table."""

    BATCH = 5000

    def __init__(self, path: str) -> None:
        # Imported here: it takes a quarter of a second, which every other command would pay.
        import sqlite_utils

        self.db = sqlite_utils.Database(path)
        self.table = self.db.table(TABLE)
        self.table.drop(ignore=True)
        columns: dict[str, Any] = {"seq": int, "type": str, "time": int, "fields": str}
        columns.update({"id": int, "parent": int, "name": str})
        self.table.create(columns, pk="seq")
        self.rows: list[dict[str, Any]] = []

    def __call__(self, seq: int, entry: Any) -> None:
        fields = entry._asdict()
        row: dict[str, Any] = {
            "seq": seq,
            "type": type(entry).__name__,
            "time": sql_value(fields.get("time")),
            "fields": _json(fields),
        }
        for key in COMMON_FIELDS:
            row[key] = sql_value(fields.get(key))
        self.rows.append(row)
        if len(self.rows) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.table.insert_all(self.rows, batch_size=self.BATCH)
            self.rows = []

    def close(self) -> None:
        self._flush()
        self.table.create_index(["type"], if_not_exists=True)
        self.table.create_index(["id"], if_not_exists=True)
        self.db.close()


@dataclass
class DumpResult:
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    tail: TornTail | None = None  # the log ends in a torn tail, which was not dumped


class _Done(Exception):
    pass


def dump_journal(
    storage: Storage,
    root: str,
    sink: Callable[[int, Any], None],
    *,
    from_seq: int = 1,
    to_seq: int | None = None,
    types: set[type] | None = None,
) -> DumpResult:
    """Hands every entry with from_seq <= seq <= to_seq (of the given types) to ``sink``.

    Raises what the reader raises (JournalCorrupt, UnknownEntryType, MalformedEntry) at the first
    record it cannot trust, after every entry before it went to ``sink``.
    """
    listing = list_journal(storage, root)
    result = DumpResult()
    if not listing.segments:
        return result
    # Entries before the oldest segment are gone (covered by checkpoints): start where it does.
    after = max(from_seq - 1, listing.segments[0][0] - 1)
    decode = entries.decode

    def on_record(rec: Record, path: str) -> None:
        seq = rec.seq
        if seq <= after:
            return
        if to_seq is not None and seq > to_seq:
            raise _Done
        where = f"{path} at offset {rec.offset} (entry {seq})"
        entry = decode(rec.type, bytes(rec.payload), where=where)
        if types is not None and type(entry) not in types:
            return
        sink(seq, entry)
        if result.first_seq is None:
            result.first_seq = seq
        result.last_seq = seq
        result.entries += 1

    try:
        read = read_log(storage, listing, after, None, on_record=on_record)
    except _Done:
        return result
    result.tail = read.tail
    return result

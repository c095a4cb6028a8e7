"""`shoal journal repair`: make a damaged journal open again, never destroying a byte.

Two kinds of damage are told apart (journal/format.py says how):

* a *torn tail*: the end of the last segment is an incomplete write that no valid record
  follows. Nothing in it was ever acknowledged, so it is cut off without asking; the segment is
  copied aside first. Start-up does the same through ``journal.tail.truncate_torn_tail``.
* anything else (a bad checksum with valid records after it, a gap between segments, a
  missing newest segment): bytes that were once durable are gone or changed, and cutting the
  log there drops acknowledged entries. Repair refuses and says exactly what would be lost;
  with ``force`` it copies the damaged segment aside, truncates it at the damage, renames every
  later segment aside, and points the ``seen`` marker at the newest segment left.

The log is examined the way start-up reads it: from the newest checkpoint that loads. Damage in
older segments, which only older checkpoints need, does not stop the home from opening;
``shoal journal verify`` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from journal.errors import JournalCorrupt
from journal.format import (
    RECORD_HEADER,
    SEGMENT_HEADER,
    BadSegmentHeader,
    Record,
    ScanEnd,
    iter_records,
    parse_segment_header,
    segment_header,
)
from journal.layout import SEEN_FILE, Listing, broken_name, list_journal, segment_name
from journal.reader import read_log
from journal.storage import Storage, join, truncate_durably, write_durably
from journal.tail import truncate_torn_tail, write_seen
from recovery.verify import newest_loadable_checkpoint

# -- what a forced repair would lose -----------------------------------------------------------


@dataclass(frozen=True)
class SegmentSpan:
    path: str
    entries: int  # valid records counted from the segment's start
    first_seq: int | None
    last_seq: int | None
    note: str = ""


@dataclass
class Loss:
    first_seq: int  # the first entry the log would no longer hold
    after_damage: SegmentSpan | None  # records still readable beyond the damage in its segment
    bytes_after_damage: int
    later: list[SegmentSpan] = field(default_factory=list)  # segments renamed aside
    missing_segment: str | None = None  # gone already; named by `seen`

    @property
    def known_entries(self) -> int:
        n = self.after_damage.entries if self.after_damage else 0
        return n + sum(s.entries for s in self.later)

    @property
    def last_known_seq(self) -> int | None:
        seqs = [s.last_seq for s in self.later if s.last_seq is not None]
        if self.after_damage and self.after_damage.last_seq is not None:
            seqs.append(self.after_damage.last_seq)
        return max(seqs) if seqs else None

    def describe(self) -> str:
        parts = []
        last = self.last_known_seq
        if last is not None:
            more = ", at least: damaged bytes may hide more" if self.bytes_after_damage else ""
            parts.append(
                f"entries {self.first_seq}..{last} ({last - self.first_seq + 1} entries{more})"
            )
        elif self.missing_segment is None:
            parts.append(f"every entry from {self.first_seq} on")
        if self.bytes_after_damage:
            parts.append(f"{self.bytes_after_damage} bytes from the damage on")
        if self.later:
            names = ", ".join(
                f"{s.path} ({s.entries} entries{', ' + s.note if s.note else ''})"
                for s in self.later
            )
            parts.append(f"later segments set aside: {names}")
        if self.missing_segment:
            parts.append(
                f"the missing segment {self.missing_segment} (entries from {self.first_seq} on)"
                " stays lost"
            )
        return "; ".join(parts)


@dataclass
class Step:
    kind: str  # "torn-tail" | "damage" | "gap" | "missing" | "seen"
    path: str
    offset: int | None
    what: str
    loss: Loss | None = None  # None: no acknowledged entry is lost
    done: list[str] = field(default_factory=list)  # what was done, one line each

    def describe(self) -> str:
        where = self.path if self.offset is None else f"{self.path} at offset {self.offset}"
        return f"{where}: {self.what}"


@dataclass
class RepairReport:
    checkpoint_seq: int
    steps: list[Step] = field(default_factory=list)
    refused: Step | None = None
    refusal: str = ""


def _span(storage: Storage, path: str) -> SegmentSpan:
    data = storage.read(path)
    try:
        first = parse_segment_header(data)
    except BadSegmentHeader as exc:
        return SegmentSpan(path, 0, None, None, f"header unreadable: {exc}")
    count, last, note = 0, None, ""
    for item in iter_records(data, first):
        if isinstance(item, ScanEnd):
            if not item.clean:
                note = f"damaged at offset {item.offset}"
            break
        count, last = count + 1, item.seq
    return SegmentSpan(path, count, first if count else None, last, note)


def _after_damage(data: bytes, end: ScanEnd) -> SegmentSpan | None:
    """The records that still validate after the damage, read from the next valid one on."""
    start = end.next_valid_offset
    if start is None:
        return None
    seq = RECORD_HEADER.unpack_from(data, start)[2]
    # iter_records reads a segment image: give the remainder a header of its own.
    image = segment_header(seq) + data[start:]
    count, last = 0, None
    for item in iter_records(image, seq):
        if isinstance(item, ScanEnd):
            break
        count, last = count + 1, item.seq
    return SegmentSpan("", count, seq if count else None, last)


def _plan(
    storage: Storage, listing: Listing, exc: JournalCorrupt, last_valid: dict[str, int]
) -> Step:
    paths = [path for _, path in listing.segments]
    firsts = {path: first for first, path in listing.segments}
    if exc.offset is None and exc.path not in firsts:
        seen = listing.seen or 0
        step = Step("missing", exc.path, None, exc.problem)
        step.loss = Loss(seen, None, 0, missing_segment=exc.path)
        return step
    index = paths.index(exc.path)
    later = [_span(storage, p) for p in paths[index + 1 :]]
    if exc.offset is None:
        # A gap before this segment: it and everything after it are set aside.
        step = Step("gap", exc.path, None, exc.problem)
        step.loss = Loss(firsts[exc.path], None, 0, [_span(storage, exc.path), *later])
        return step
    data = storage.read(exc.path)
    first_lost = last_valid.get(exc.path, firsts[exc.path] - 1) + 1
    step = Step("damage", exc.path, exc.offset, exc.problem)
    after = None
    if exc.offset >= SEGMENT_HEADER.size:
        end = next(i for i in iter_records(data, firsts[exc.path]) if isinstance(i, ScanEnd))
        after = _after_damage(data, end)
    step.loss = Loss(first_lost, after, len(data) - exc.offset, later)
    return step


def _apply(storage: Storage, root: str, step: Step) -> None:
    listing = list_journal(storage, root)
    paths = [path for _, path in listing.segments]
    done = step.done
    if step.kind in ("damage", "gap"):
        index = paths.index(step.path)
        aside_whole = paths[index + 1 :]
        if step.kind == "gap" or not step.offset:
            aside_whole.insert(0, step.path)
        else:
            data = storage.read(step.path)
            copy = broken_name(storage, step.path)
            write_durably(storage, copy, data)
            truncate_durably(storage, step.path, step.offset)
            done.append(f"copied {step.path} to {copy}, then truncated it at offset {step.offset}")
        for path in aside_whole:
            target = broken_name(storage, path)
            storage.rename(path, target)
            done.append(f"renamed {path} to {target}")
        if aside_whole:
            storage.fsync_dir(root)
        listing = list_journal(storage, root)
    newest = write_seen(storage, root, listing)
    done.append(f"set the `seen` marker to {newest}")


def repair_journal(
    storage: Storage, root: str = "journal", *, force: bool = False, max_steps: int = 64
) -> RepairReport:
    """Repairs what stops the home from opening; see the module docstring for what it does."""
    report = RepairReport(0)
    for _ in range(max_steps):
        listing = list_journal(storage, root)
        ckpt = newest_loadable_checkpoint(storage, listing)
        after = ckpt.seq if ckpt is not None else 0
        report.checkpoint_seq = after
        seen_path = join(root, SEEN_FILE)
        if listing.seen is None and storage.exists(seen_path):
            step = Step("seen", seen_path, None, "the `seen` marker is not a sequence number")
            step.done.append(f"it held {storage.read(seen_path)[:40]!r}")
            _apply(storage, root, step)
            report.steps.append(step)
            continue
        last_valid: dict[str, int] = {}

        def on_record(rec: Record, path: str, last_valid: dict[str, int] = last_valid) -> None:
            last_valid[path] = rec.seq

        try:
            result = read_log(storage, listing, after, None, on_record=on_record)
        except JournalCorrupt as exc:
            step = _plan(storage, listing, exc, last_valid)
            refusal = _refusal(step, after, listing)
            if refusal or not force:
                report.refused, report.refusal = step, refusal
                return report
            _apply(storage, root, step)
            report.steps.append(step)
            continue
        if result.tail is None:
            return report
        tail = result.tail
        step = Step(
            "torn-tail",
            tail.path,
            tail.offset,
            f"torn tail of {tail.size - tail.offset} bytes ({tail.reason})",
        )
        copy = truncate_torn_tail(storage, root, tail)
        verb = "removed it" if tail.offset == 0 else f"truncated it at offset {tail.offset}"
        step.done.append(f"copied {tail.path} to {copy}, then {verb}")
        report.steps.append(step)
    raise JournalCorrupt(root, None, f"still damaged after {max_steps} repairs", "")


def _refusal(step: Step, checkpoint_seq: int, listing: Listing) -> str:
    """Why even a forced repair must not do ``step``, or ''."""
    if step.kind == "gap" and checkpoint_seq == 0 and listing.segments:
        if step.path == listing.segments[0][1]:
            return (
                f"no checkpoint loads and the log starts at entry {listing.segments[0][0]}:"
                " there is nothing to rebuild the state from; restore"
                f" {segment_name(1)} or a checkpoint from a backup"
            )
    if step.loss is not None and step.kind in ("damage", "gap"):
        if step.loss.first_seq - 1 < checkpoint_seq:
            return (
                f"the damage is at entry {step.loss.first_seq}, before the newest checkpoint"
                f" (entry {checkpoint_seq}): cutting the log there would leave it behind the"
                " checkpoint; restore the segment from a backup"
            )
    return ""

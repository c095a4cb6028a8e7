"""What `shoal journal repair` does, one step at a time, and what each step loses.

``recovery.repair`` finds the damage and plans a ``Step``; ``do_step`` carries it out. Every
file a step changes is copied or renamed aside first (``*.broken``, ``*.broken-N``): no byte is
ever destroyed. A crash in the middle of a step leaves every file whole (a copy is durable
before its original changes; a new segment is written under a temporary name and renamed into
place), so repair can simply be run again (tests/recovery/test_crashsim.py crashes it at every
point).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from journal.format import (
    RECORD_HEADER,
    SEGMENT_HEADER,
    BadSegmentHeader,
    ScanEnd,
    iter_records,
    parse_segment_header,
    segment_header,
)
from journal.layout import CHECKPOINT_DIR, broken_name, list_journal, segment_name
from journal.storage import Storage, join, truncate_durably, write_durably
from journal.tail import write_seen


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
    missing_segment: str | None = None  # gone already; named by `seen` or a checkpoint

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
    # "torn-tail" | "seen": lose nothing acknowledged, done without --force.
    # "damage" | "apply" | "gap": the log is cut before ``loss.first_seq``.
    # "missing": a lost newest segment is accepted.
    # "history": damage only older checkpoints need; the log before ``base`` is set aside.
    # "checkpoint": a checkpoint start-up cannot use is set aside.
    kind: str
    path: str
    offset: int | None
    what: str
    loss: Loss | None = None  # None: no entry of the state the home opens with is lost
    note: str = ""  # what is set aside when nothing the home opens with is lost
    plan: str = ""  # what a forced repair does, for the operator to read before --force
    base: int = 0  # the checkpoint start-up loads (its sequence number; 0: the empty state)
    segments_aside: list[str] = field(default_factory=list)  # renamed aside whole
    checkpoints_aside: list[str] = field(default_factory=list)
    split: bool = False  # history: ``path`` also holds entries after ``base``
    split_at: int | None = None  # where entry base + 1 resumes in ``path`` (None: not found)
    done: list[str] = field(default_factory=list)  # what was done, one line each

    @property
    def needs_force(self) -> bool:
        return self.kind not in ("torn-tail", "seen")

    def describe(self) -> str:
        where = self.path if self.offset is None else f"{self.path} at offset {self.offset}"
        return f"{where}: {self.what}"

    def loss_text(self) -> str:
        return self.loss.describe() if self.loss is not None else self.note


def span(storage: Storage, path: str) -> SegmentSpan:
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


def records_from(data: bytes, start: int | None) -> SegmentSpan | None:
    """The records that validate from offset ``start`` on (the next valid one after damage,
    or an entry that cannot be applied)."""
    if start is None or start < SEGMENT_HEADER.size:
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


def do_step(storage: Storage, root: str, step: Step) -> None:
    """Carries out a planned step (every kind but "torn-tail", which journal/tail.py does)."""
    done = step.done
    if step.kind in ("damage", "apply") and step.offset:
        data = storage.read(step.path)
        copy = broken_name(storage, step.path)
        write_durably(storage, copy, data)
        truncate_durably(storage, step.path, step.offset)
        done.append(f"copied {step.path} to {copy}, then truncated it at offset {step.offset}")
    if step.kind == "history":
        _split(storage, root, step)
    for paths, folder in (
        (step.segments_aside, root),
        (step.checkpoints_aside, join(root, CHECKPOINT_DIR)),
    ):
        for path in paths:
            target = broken_name(storage, path)
            storage.rename(path, target)
            done.append(f"renamed {path} to {target}")
        if paths:
            storage.fsync_dir(folder)
    if step.kind != "checkpoint":
        if step.needs_force:  # accepting a lost segment is never done unasked
            _follow_checkpoint(storage, root, step)
        newest = write_seen(storage, root, list_journal(storage, root))
        done.append(f"set the `seen` marker to {newest}")


def _split(storage: Storage, root: str, step: Step) -> None:
    """History whose damaged segment also holds entries after the checkpoint: those records
    go into a new segment that starts right after it, before the old one is set aside."""
    first = step.base + 1
    new = join(root, segment_name(first))
    if not step.split or storage.exists(new):
        return
    data = storage.read(step.path)
    rest = data[step.split_at :] if step.split_at is not None else b""
    write_durably(storage, new, segment_header(first) + rest)
    if step.split_at is None:
        step.done.append(f"started {new} after the checkpoint at entry {step.base}")
    else:
        step.done.append(
            f"copied the records of {step.path} from offset {step.split_at} (entry {first} on)"
            f" into {new}"
        )


def _follow_checkpoint(storage: Storage, root: str, step: Step) -> None:
    """A checkpoint at S is always followed by segment S + 1 (journal/reader.py checks it): if
    the log no longer reaches past the checkpoint start-up loads, start that segment."""
    listing = list_journal(storage, root)
    if not listing.checkpoints:
        return
    seq = listing.checkpoints[-1].seq
    if any(first > seq for first, _ in listing.segments):
        return
    if listing.segments:
        last = span(storage, listing.segments[-1][1]).last_seq
        if last is not None and last > seq:
            return
    path = join(root, segment_name(seq + 1))
    write_durably(storage, path, segment_header(seq + 1))  # whole or absent after a crash
    step.done.append(f"started {path} after the checkpoint at entry {seq}")

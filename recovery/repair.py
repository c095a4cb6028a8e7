"""`shoal journal repair`: make a damaged journal open again and verify clean, never destroying a
byte. Every kind of damage `shoal journal verify` reports has a way out here (only entries
written by a newer shoal have none: upgrade). What loses no acknowledged entry happens without
asking; the rest needs ``force``, and says first what it would lose:

* a *torn tail*: the end of the last segment is an incomplete write that no later write
  follows. Nothing in it was ever acknowledged: it is cut off, the segment copied aside first.
  Start-up does the same through ``journal.tail.truncate_torn_tail``. A garbled ``seen`` marker
  is rewritten.
* damage to the log the state start-up builds needs: changed bytes, a zeroed or unreadable
  segment, an entry that does not decode or that replay cannot apply, a gap. The log is cut
  before it: the damaged segment is copied aside and truncated there (renamed aside whole when
  its header is damaged), every later segment is renamed aside. The state becomes the one the
  entries before the damage leave; every entry from the damage on is lost (listed first).
* a lost newest segment (named by ``seen``, or by a checkpoint written after it was created):
  the loss is accepted; ``seen`` is reset and, when a checkpoint expects it, an empty segment
  starts after the checkpoint.
* damage only older history needs (log before the checkpoint start-up loads, kept for falling
  back to older checkpoints): the damaged segment and the older ones are renamed aside, with
  the checkpoints that needed them. The state the home opens with is unchanged; when the damaged
  segment also holds entries after the checkpoint, they are copied into a new segment first.
* a checkpoint that does not load, or that no log follows: renamed aside (start-up skips it).

A forced cut also sets aside the checkpoints newer than the one start-up loads (none of them
loads; they describe entries the log no longer holds). The log is examined the way start-up
reads it (from the newest checkpoint that loads, applying every entry), then the way ``shoal
journal verify`` reads it (from the oldest segment), one step at a time until both are clean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from journal.errors import JournalCorrupt, MalformedEntry, UnknownEntryType
from journal.format import SEGMENT_HEADER, Record, ScanEnd, find_record, iter_records
from journal.layout import SEEN_FILE, Listing, list_journal
from journal.reader import read_log
from journal.storage import Storage, join
from journal.tail import first_seq_of, truncate_torn_tail
from recovery.repair_steps import Loss, Step, do_step, records_from, span
from recovery.verify import Problem, start_up_state, verify_journal

__all__ = ["Loss", "RepairReport", "Step", "repair_journal"]


@dataclass
class RepairReport:
    checkpoint_seq: int
    steps: list[Step] = field(default_factory=list)
    refused: Step | None = None  # the step that needs --force, not done


@dataclass
class _Cursor:
    """The last valid record the reader handed over (the one being applied, when applying
    fails)."""

    path: str = ""
    offset: int = -1
    seq: int = 0

    def see(self, rec: Record, path: str) -> None:
        self.path, self.offset, self.seq = path, rec.offset, rec.seq


def repair_journal(
    storage: Storage, root: str = "journal", *, force: bool = False, max_steps: int = 64
) -> RepairReport:
    """Repairs what stops the home from opening or verifying; see the module docstring."""
    report = RepairReport(0)
    for _ in range(max_steps):
        listing = list_journal(storage, root)
        step = _next_step(storage, root, listing, report)
        if step is None:
            return report
        if step.kind == "torn-tail":
            report.steps.append(step)
            continue  # done while planning: nothing acknowledged was in it
        if step.needs_force and not force:
            report.refused = step
            return report
        do_step(storage, root, step)
        report.steps.append(step)
    raise JournalCorrupt(root, None, f"still damaged after {max_steps} repairs", "")


def _next_step(storage: Storage, root: str, listing: Listing, report: RepairReport) -> Step | None:
    seen_path = join(root, SEEN_FILE)
    if listing.seen is None and storage.exists(seen_path):
        step = Step("seen", seen_path, None, "the `seen` marker is not a sequence number")
        step.done.append(f"it held {storage.read(seen_path)[:40]!r}")
        return step
    state, ckpt = start_up_state(storage, listing)
    base = ckpt.seq if ckpt is not None else 0
    report.checkpoint_seq = base
    cursor = _Cursor()
    try:
        result = read_log(storage, listing, base, state.apply, on_record=cursor.see)
    except JournalCorrupt as exc:
        return _plan(storage, listing, exc, cursor, base)
    except UnknownEntryType:
        return None  # written by a newer shoal: nothing here to repair
    except MalformedEntry as exc:
        if "newer version" in str(exc):
            return None
        what = str(exc).removeprefix(f"{cursor.path} at offset {cursor.offset}: ")
        bad = JournalCorrupt(cursor.path, cursor.offset, f"entry {cursor.seq}: {what}", "")
        return _plan(storage, listing, bad, cursor, base)
    if result.tail is not None:
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
        return step
    problem = verify_journal(storage, root).problem
    return None if problem is None else _plan_verified(storage, listing, problem, base)


def _first_lost(listing: Listing, exc: JournalCorrupt, cursor: _Cursor, base: int) -> int:
    """The first entry the damage ``exc`` takes from the log."""
    if cursor.path == exc.path and cursor.offset == exc.offset:
        return cursor.seq  # a valid record that cannot be decoded or applied
    if exc.offset is None:  # a gap: the log read so far ends at the cursor
        return max(base, cursor.seq) + 1
    if cursor.path == exc.path:
        return cursor.seq + 1
    return dict((p, f) for f, p in listing.segments)[exc.path]


def _plan(
    storage: Storage, listing: Listing, exc: JournalCorrupt, cursor: _Cursor, base: int
) -> Step:
    """The step for damage start-up trips over."""
    paths = [path for _, path in listing.segments]
    newer = [c.path for c in listing.checkpoints if c.seq > base]
    if exc.offset is None and exc.path not in paths:
        step = Step("missing", exc.path, None, exc.problem, base=base, checkpoints_aside=newer)
        step.loss = Loss(first_seq_of(exc.path), None, 0, missing_segment=exc.path)
        step.plan = "reset the `seen` marker to the newest segment present" + (
            "" if base == 0 else f" and start a segment after the checkpoint at entry {base}"
        )
        return step
    first_lost = _first_lost(listing, exc, cursor, base)
    if first_lost <= base:
        return _plan_history(storage, listing, exc.path, exc.offset, exc.problem, base)
    index = paths.index(exc.path)
    later = paths[index + 1 :]
    if exc.offset is None or exc.offset == 0:
        kind, aside = "gap" if exc.offset is None else "damage", [exc.path, *later]
        what = f"rename {exc.path} and every later segment aside"
    else:
        kind, aside = "damage", later
        what = f"copy {exc.path} aside, truncate it at offset {exc.offset}"
        what += " and rename every later segment aside" if later else ""
    if cursor.path == exc.path and cursor.offset == exc.offset:
        kind = "apply"
    step = Step(kind, exc.path, exc.offset, exc.problem, base=base, segments_aside=aside)
    step.checkpoints_aside = newer
    if newer:
        what += f", and rename the checkpoints start-up cannot load aside ({', '.join(newer)})"
    step.plan = what
    after, size = None, 0
    if exc.offset is not None:
        data = storage.read(exc.path)
        size = len(data) - exc.offset
        if kind == "apply":
            after = records_from(data, exc.offset)
        elif exc.offset >= SEGMENT_HEADER.size:
            end = next(
                i for i in iter_records(data, first_seq_of(exc.path)) if isinstance(i, ScanEnd)
            )
            after = records_from(data, end.next_valid_offset)
    spans = [span(storage, p) for p in later]
    if exc.offset is None:
        spans.insert(0, span(storage, exc.path))
    step.loss = Loss(first_lost, after, 0 if kind == "apply" else size, spans)
    return step


def _plan_history(
    storage: Storage, listing: Listing, path: str, offset: int | None, what: str, base: int
) -> Step:
    """Damage in log only older checkpoints need (entries up to ``base``): that log and those
    checkpoints are set aside; the state start-up builds stays whole."""
    paths = [p for _, p in listing.segments]
    index = paths.index(path)
    if offset is None:  # a gap before ``path``: the log before it goes
        aside, keep_from = paths[:index], first_seq_of(path)
    else:
        aside = paths[: index + 1]
        keep_from = first_seq_of(paths[index + 1]) if index + 1 < len(paths) else base + 2
    step = Step("history", path, offset, what, base=base, segments_aside=aside)
    if offset is not None and keep_from > base + 1:
        # The damaged segment holds entries after the checkpoint too: they move to a new one.
        step.split, keep_from = True, base + 1
        start = max(offset or 0, SEGMENT_HEADER.size)
        step.split_at = find_record(storage.read(path), start, base + 1)
    step.checkpoints_aside = [c.path for c in listing.checkpoints if c.seq + 1 < keep_from]
    names = ", ".join([*aside, *step.checkpoints_aside]) or "nothing"
    step.note = (
        f"no entry of the state the home opens with (the checkpoint at entry {base} and the log"
        f" after it); set aside: {names}: history only older checkpoints needed"
    )
    step.plan = f"rename {names} aside"
    if step.split and step.split_at is None:
        # The damage reaches past the checkpoint: the log restarts empty right after it.
        step.note = (
            f"every entry after the checkpoint at entry {base} that {path} held (entry"
            f" {base + 1} is not found after the damage); set aside: {names}"
        )
        step.plan = f"start an empty segment after entry {base}, then {step.plan}"
    elif step.split:
        step.plan = f"copy the entries after {base} into a new segment, then {step.plan}"
    return step


def _plan_verified(storage: Storage, listing: Listing, problem: Problem, base: int) -> Step | None:
    """The step for a problem only `shoal journal verify` finds (start-up reads past it)."""
    if problem.kind.startswith("checkpoint"):
        step = Step("checkpoint", problem.path, None, problem.what, base=base)
        step.checkpoints_aside = [problem.path]
        step.note = "no entry: start-up does not use this checkpoint"
        step.plan = f"rename {problem.path} aside"
        return step
    if problem.kind in ("damage", "gap") and problem.path in {p for _, p in listing.segments}:
        return _plan_history(storage, listing, problem.path, problem.offset, problem.what, base)
    return None  # written by a newer shoal, or nothing repair can change

"""`shoal journal verify`: check every durable byte of a journal without changing any.

The log is read with the same reader start-up uses (``journal.reader.read_log``), from the
oldest segment still present rather than from the newest checkpoint, so damage that start-up
would not trip over yet (in segments only an older checkpoint needs) is found too. Every entry
is decoded, and the entries after the checkpoint start-up would load are applied to its state
as start-up applies them, so an entry that checksums but cannot be applied (start-up would
stop there) is found with its sequence number and why. Every checkpoint is opened and loaded
the way start-up would load it, and must be followed by a log that continues from its sequence
number. The first problem found is reported with its file, offset and the command to run next;
its ``kind`` tells ``recovery.repair`` which way out it takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apsw

from engine.snapshot import load_checkpoint
from engine.state import State
from journal import entries
from journal.checkpoint import CheckpointInvalid, open_checkpoint
from journal.errors import JournalCorrupt, MalformedEntry, UnknownEntryType
from journal.format import Record
from journal.layout import SEEN_FILE, CheckpointFile, Listing, list_journal, set_aside
from journal.reader import read_log
from journal.storage import Storage, join

REPAIR_HINT = (
    "run `shoal journal repair` to see what repairing it would take (it refuses to drop"
    " acknowledged entries unless given --force)"
)
TORN_HINT = (
    "`shoal journal repair` truncates it (a copy is kept), and opening the home truncates it"
    " automatically"
)
FORCE_HINT = (
    "`shoal journal repair` says what a forced repair would lose; `shoal journal repair"
    " --force` does it (every file it changes is kept as a *.broken copy)"
)
UPGRADE_HINT = "upgrade shoal to read this journal"


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the home, like every path the journal reports
    offset: int | None
    what: str
    hint: str
    torn_tail: bool = False
    # What repair does about it: "seen", "torn-tail", "damage" (log bytes), "gap", "missing",
    # "apply" (an entry replay cannot apply), "newer" (written by a newer shoal), "checkpoint"
    # (one that does not load), "checkpoint-gap", "checkpoint-beyond".
    kind: str = "damage"
    seq: int | None = None  # the entry it concerns, when there is one

    def describe(self) -> str:
        where = self.path if self.offset is None else f"{self.path} at offset {self.offset}"
        return f"{where}: {self.what}"


@dataclass
class VerifyReport:
    segments: list[str] = field(default_factory=list)
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    by_type: dict[str, int] = field(default_factory=dict)
    checkpoints: list[CheckpointFile] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    temporaries: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    # The replay: entries applied on top of this checkpoint (None: the empty state), as start-up
    # would; replay_base is None when the log does not reach the base (reported separately).
    replay_base: CheckpointFile | None = None
    replayed: int = 0
    replay_checked: bool = False
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Stop(Exception):
    """Carries a problem found inside the reader's record callback out of ``read_log``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


def load_state(storage: Storage, ckpt: CheckpointFile) -> State | str:
    """The state this checkpoint holds, or why start-up would reject it."""
    try:
        conn = open_checkpoint(storage, ckpt)
    except CheckpointInvalid as exc:
        return str(exc)
    try:
        return load_checkpoint(conn, ckpt.seq)
    except (apsw.Error, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        return f"{ckpt.path}: cannot be loaded: {exc}"
    finally:
        conn.close()


def check_checkpoint(storage: Storage, ckpt: CheckpointFile) -> str | None:
    """Why start-up would reject this checkpoint, or None if it would load it."""
    got = load_state(storage, ckpt)
    return got if isinstance(got, str) else None


def start_up_state(storage: Storage, listing: Listing) -> tuple[State, CheckpointFile | None]:
    """The state start-up begins from: the newest checkpoint that verifies and loads, else the
    empty state."""
    for ckpt in reversed(listing.checkpoints):
        got = load_state(storage, ckpt)
        if not isinstance(got, str):
            return got, ckpt
    return State(), None


def newest_loadable_checkpoint(storage: Storage, listing: Listing) -> CheckpointFile | None:
    """The checkpoint start-up would load: the newest one that verifies and loads."""
    for ckpt in reversed(listing.checkpoints):
        if check_checkpoint(storage, ckpt) is None:
            return ckpt
    return None


def _classify(exc: JournalCorrupt, listing: Listing) -> Problem:
    paths = {path for _, path in listing.segments}
    if exc.offset is None and exc.path not in paths:
        # The reader names a segment that `seen` or a checkpoint says existed but is gone.
        hint = f"restore it from a backup; {FORCE_HINT}"
        return Problem(exc.path, None, exc.problem, hint, kind="missing")
    kind = "gap" if exc.offset is None else "damage"
    return Problem(exc.path, exc.offset, exc.problem, REPAIR_HINT, kind=kind)


def verify_journal(storage: Storage, root: str = "journal") -> VerifyReport:
    report = VerifyReport()
    if not storage.exists(root):
        report.problem = Problem(root, None, "the journal directory does not exist", "")
        return report
    listing = list_journal(storage, root)
    report.segments = [path for _, path in listing.segments]
    report.checkpoints = list(listing.checkpoints)
    report.strays = list(listing.strays)
    report.temporaries = list(listing.temporaries)
    report.set_aside = set_aside(storage, root)
    report.problem = _check_seen(storage, root, listing) or _check_log(storage, listing, report)
    if report.problem is None:
        report.problem = _check_checkpoints(storage, listing, report)
    return report


def _check_seen(storage: Storage, root: str, listing: Listing) -> Problem | None:
    path = join(root, SEEN_FILE)
    if listing.seen is None and storage.exists(path):
        text = storage.read(path)[:40]
        return Problem(
            path,
            None,
            f"the `seen` marker holds {text!r}, not a sequence number",
            "`shoal journal repair` rewrites it from the segments present",
            kind="seen",
        )
    return None


def _apply_hint(seq: int) -> str:
    return (
        f"start-up stops at this entry too; {FORCE_HINT}: it cuts the log before entry {seq},"
        f" so the state becomes the one entry {seq - 1} left and every later entry is lost"
    )


def _replay_base(
    storage: Storage, listing: Listing, report: VerifyReport
) -> tuple[State | None, int]:
    """The state start-up would begin from and its sequence number; no state when the log
    does not continue from it (the checks of the checkpoints say so)."""
    state, ckpt = start_up_state(storage, listing)
    base = ckpt.seq if ckpt is not None else 0
    if listing.segments and listing.segments[0][0] > base + 1:
        return None, base
    report.replay_base = ckpt
    report.replay_checked = True
    return state, base


def _decode(rec: Record, path: str) -> object:
    """The record's entry; raises _Stop with the problem when it cannot be decoded."""
    where = f"{path} at offset {rec.offset} (entry {rec.seq})"
    try:
        return entries.decode(rec.type, bytes(rec.payload), where=where)
    except UnknownEntryType as exc:
        what = f"entry {rec.seq} has unknown type {exc.code}: it was written by a newer version"
        raise _Stop(
            Problem(path, rec.offset, what + " of shoal", UPGRADE_HINT, kind="newer", seq=rec.seq)
        ) from exc
    except MalformedEntry as exc:
        what = str(exc).removeprefix(where + ": ")
        if "newer version" in what:
            problem = Problem(
                path, rec.offset, f"entry {rec.seq}: {what}", UPGRADE_HINT, kind="newer",
                seq=rec.seq,
            )  # fmt: skip
        else:
            problem = Problem(
                path, rec.offset, f"entry {rec.seq}: {what}", REPAIR_HINT, seq=rec.seq
            )
        raise _Stop(problem) from exc


def _check_log(storage: Storage, listing: Listing, report: VerifyReport) -> Problem | None:
    if not listing.segments:
        after = 0
    else:
        after = listing.segments[0][0] - 1
    by_type = report.by_type
    state, base = _replay_base(storage, listing, report)

    def on_record(rec: Record, path: str) -> None:
        entry = _decode(rec, path)
        name = type(entry).__name__
        by_type[name] = by_type.get(name, 0) + 1
        if report.first_seq is None:
            report.first_seq = rec.seq
        report.last_seq = rec.seq
        report.entries += 1
        if state is not None and rec.seq > base:
            try:
                state.apply(entry, rec.seq)
            except Exception as exc:  # start-up stops on anything apply raises: so does this
                what = f"entry {rec.seq} ({name}) cannot be applied: {exc}"
                raise _Stop(
                    Problem(path, rec.offset, what, _apply_hint(rec.seq), kind="apply", seq=rec.seq)
                ) from exc
            report.replayed += 1

    try:
        result = read_log(storage, listing, after, None, on_record=on_record)
    except _Stop as stop:
        return stop.problem
    except JournalCorrupt as exc:
        return _classify(exc, listing)
    if result.tail is not None:
        tail = result.tail
        return Problem(
            tail.path,
            tail.offset,
            f"torn tail: the last {tail.size - tail.offset} bytes are an incomplete write"
            f" ({tail.reason}); no acknowledged entry is in them",
            TORN_HINT,
            torn_tail=True,
            kind="torn-tail",
        )
    return None


def _check_checkpoints(storage: Storage, listing: Listing, report: VerifyReport) -> Problem | None:
    oldest_first = listing.segments[0][0] if listing.segments else None
    # The log's end: its last entry, or (no entries) just before the oldest segment starts.
    if report.last_seq is not None:
        log_end = report.last_seq
    elif oldest_first is not None:
        log_end = oldest_first - 1
    else:
        log_end = None
    for ckpt in listing.checkpoints:
        why = check_checkpoint(storage, ckpt)
        if why is not None:
            return Problem(
                ckpt.path,
                None,
                why.removeprefix(ckpt.path + ": "),
                "start-up skips it and falls back to an older checkpoint; `shoal journal"
                " repair --force` sets it aside (renamed *.broken), losing no entry",
                kind="checkpoint",
            )
        if oldest_first is None or log_end is None:
            return Problem(
                ckpt.path,
                None,
                f"no log segment follows the checkpoint at entry {ckpt.seq}",
                f"a segment is missing; restore it from a backup; {FORCE_HINT}",
                kind="checkpoint-beyond",
            )
        if oldest_first > ckpt.seq + 1:
            return Problem(
                ckpt.path,
                None,
                f"the checkpoint is at entry {ckpt.seq} but the log starts at entry"
                f" {oldest_first}: entries {ckpt.seq + 1}..{oldest_first - 1} are missing",
                "restore the missing segment; this checkpoint cannot be replayed forward;"
                " `shoal journal repair --force` sets it aside",
                kind="checkpoint-gap",
            )
        if log_end < ckpt.seq:
            return Problem(
                ckpt.path,
                None,
                f"the checkpoint is at entry {ckpt.seq} but the log ends at entry {log_end}",
                f"segments after the log's end are missing; restore them from a backup;"
                f" {FORCE_HINT}",
                kind="checkpoint-beyond",
            )
    return None

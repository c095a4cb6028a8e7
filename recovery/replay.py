"""`shoal journal replay`: rebuild the state the way start-up does, and optionally check it
against a replay of the whole log from entry 1."""

from __future__ import annotations

from dataclasses import dataclass

from engine.engine import Engine
from engine.home import JOURNAL_DIR
from engine.inode import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG
from engine.snapshot import digest
from engine.state import State
from journal.layout import list_journal
from journal.reader import read_log


@dataclass(frozen=True)
class StateCounts:
    inodes: int
    directories: int
    files: int
    symlinks: int
    mounts: int
    blocks: int
    pending_persists: int
    last_seq: int


def count_state(state: State) -> StateCounts:
    kinds = {S_IFDIR: 0, S_IFREG: 0, S_IFLNK: 0}
    for node in state.tree.walk():
        fmt = node.mode & S_IFMT
        kinds[fmt] = kinds.get(fmt, 0) + 1
    return StateCounts(
        inodes=state.tree.count,
        directories=kinds[S_IFDIR],
        files=kinds[S_IFREG],
        symlinks=kinds[S_IFLNK],
        mounts=len(state.mounts),
        blocks=state.block_count(),
        pending_persists=len(state.persists),
        last_seq=state.last_seq,
    )


@dataclass(frozen=True)
class FullReplay:
    """The outcome of replaying the log from entry 1, or why it could not be done."""

    possible: bool
    note: str
    digest: str | None = None
    entries: int = 0
    last_seq: int = 0


@dataclass(frozen=True)
class ReplayReport:
    checkpoint: str | None  # the checkpoint start-up loaded, relative to the home
    checkpoint_seq: int
    replayed: int  # log entries applied on top of it
    counts: StateCounts
    digest: str
    full: FullReplay | None

    @property
    def mismatch(self) -> bool:
        full = self.full
        return full is not None and full.possible and full.digest != self.digest


def replay_home(home: str, *, verify: bool = False) -> ReplayReport:
    engine = Engine.open_home(home, reconcile=False)  # inspection: change nothing
    try:
        report = engine.journal.report
        assert report is not None
        ckpt = report.checkpoint
        full = _replay_from_start(engine) if verify else None
        return ReplayReport(
            checkpoint=ckpt.path if ckpt else None,
            checkpoint_seq=ckpt.seq if ckpt else 0,
            replayed=report.replayed,
            counts=count_state(engine.state),
            digest=digest(engine.state),
            full=full,
        )
    finally:
        # Rebuilding is all this command does: a new checkpoint would change the home.
        engine.close(checkpoint=False)


def _replay_from_start(engine: Engine) -> FullReplay:
    """Replays every entry into a fresh state while ``engine`` holds the home's lock (so no
    writer changes the log meanwhile)."""
    listing = list_journal(engine.storage, JOURNAL_DIR)
    if not listing.segments:
        if engine.state.last_seq == 0:
            return FullReplay(True, "the log is empty", digest(State()), 0, 0)
        return FullReplay(False, "no log segment is present: the state is all in the checkpoint")
    first = listing.segments[0][0]
    if first != 1:
        return FullReplay(
            False,
            f"the oldest segment starts at entry {first}: entries before it were deleted after"
            " later checkpoints covered them, so a replay from entry 1 is not possible",
        )
    state = State()
    # The same reading as start-up: fast appliers, and the scanning process for a long log.
    fast = state.replay_appliers()
    scanner = engine.journal.options.replay_scanner
    result = read_log(engine.storage, listing, 0, state.apply, fast=fast, scanner=scanner)
    state.last_seq = max(state.last_seq, result.last_seq)
    return FullReplay(True, "", digest(state), result.applied, state.last_seq)

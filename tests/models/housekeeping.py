"""The journal's housekeeping rules that every engine state machine runs: a checkpoint now and
then, and a clean restart (close, optionally with a final checkpoint, and open again)."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from engine.engine import Engine
from engine.snapshot import digest


class Housekeeping(RuleBasedStateMachine):
    """A machine with an open ``engine``; it says how to reopen it and what a clean restart
    must have kept."""

    engine: Engine | None

    def reopen(self) -> Engine:
        raise NotImplementedError

    def after_clean_restart(self, before: str, final_checkpoint: bool) -> None:
        """Checks the reopened engine against the state digest it had before the restart."""

    @rule()
    def checkpoint(self) -> None:
        assert self.engine is not None
        self.engine.checkpoint()

    @rule(final_checkpoint=st.booleans())
    def clean_restart(self, final_checkpoint: bool) -> None:
        assert self.engine is not None
        before = digest(self.engine.state)
        self.engine.close(checkpoint=final_checkpoint)
        self.engine = None
        self.engine = self.reopen()
        self.after_clean_restart(before, final_checkpoint)

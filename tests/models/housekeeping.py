"""The journal's housekeeping rules that every engine state machine runs: a checkpoint now and
then, and a clean restart (close, optionally with a final checkpoint, and open again)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings
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


# SHOAL_CRASH_EXAMPLES=N: a long run of N examples from fresh seeds (not derandomized).
LONG_RUN = int(os.environ.get("SHOAL_CRASH_EXAMPLES", "0"))


def crash_settings(examples: int, **extra: Any) -> settings:
    """The crash machines' settings: ``examples`` derandomized in CI, or a long run."""
    return settings(
        max_examples=LONG_RUN or examples,
        stateful_step_count=40,
        derandomize=not LONG_RUN,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **extra,
    )


@contextmanager
def quiet_logs(*names: str) -> Iterator[None]:
    """The named loggers silenced below CRITICAL while the block runs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)

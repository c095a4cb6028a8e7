"""The tests' one invariant checker: fsck's named checks (recovery/fsck.py), nothing of its own.

``assert_fsck_clean`` runs every check on a state and fails naming each check that failed, with
its failures. ``CheckedEngine`` runs it whenever an engine closes; the shared engine fixtures
(tests/conftest.py) open every engine as one, so each engine test ends with a clean fsck.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.engine import Engine
from engine.state import State
from recovery.fsck import run_checks


def fsck_failures(state: State) -> list[str]:
    """One line per failed check: its name and what it found."""
    return [
        f"{r.check.name}: {'; '.join(r.failures)}{f' (and {r.more} more)' if r.more else ''}"
        for r in run_checks(state)
        if not r.ok
    ]


def assert_fsck_clean(subject: Engine | State) -> None:
    """Every fsck check holds on ``subject`` (an engine's state is read under its gate's lock,
    as `shoal fsck` does, so background writers cannot change it halfway)."""
    if isinstance(subject, State):
        failed = fsck_failures(subject)
    else:
        with subject.gate.lock:
            failed = fsck_failures(subject.state)
    assert not failed, "fsck checks failed:\n  " + "\n  ".join(failed)


class CheckedEngine(Engine):
    """An engine that runs fsck's checks on the state it leaves when it closes (then closes
    anyway, so a failure never leaves the home locked)."""

    closed = False

    def close(self, *, checkpoint: bool = True, release_memory: bool = False) -> None:
        failed: list[str] = []
        if not self.closed:
            with self.gate.lock:
                failed = fsck_failures(self.state)
        self.closed = True
        super().close(checkpoint=checkpoint, release_memory=release_memory)
        assert not failed, "fsck checks failed when the engine closed:\n  " + "\n  ".join(failed)


OpenEngine = Callable[..., CheckedEngine]  # the open_engine fixture (tests/conftest.py)

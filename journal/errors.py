"""Errors of the journal layer. Each carries a message fit to show a user as one line."""

from __future__ import annotations


class JournalError(Exception):
    """Base of every journal failure."""


class JournalCorrupt(JournalError):
    """Durable bytes of the journal are damaged; start-up stops until an operator acts."""

    def __init__(self, path: str, offset: int | None, problem: str, hint: str) -> None:
        self.path = path
        self.offset = offset
        self.problem = problem
        self.hint = hint
        where = path if offset is None else f"{path} at offset {offset}"
        super().__init__(f"{where}: {problem}; {hint}")


class UnknownEntryType(JournalError):
    def __init__(self, code: int, where: str) -> None:
        self.code = code
        super().__init__(
            f"{where}: unknown entry type {code}; the journal was written by a newer version of"
            " shoal: upgrade shoal to read it"
        )


class MalformedEntry(JournalError):
    pass


class JournalNotWritable(JournalError):
    pass


class JournalLocked(JournalError):
    pass


class JournalClosed(JournalError):
    pass


class JournalFailed(JournalError):
    """A write or fsync failed; no later mutation can be acknowledged by this process."""

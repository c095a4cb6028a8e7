"""Errors of the connectors. Each message names the store and the path, fit for one line."""

from __future__ import annotations


class UfsError(Exception):
    """Base of every connector failure."""


class UfsNotFound(UfsError):
    pass


class UfsExists(UfsError):
    pass


class UfsNotEmpty(UfsError):
    pass


class UfsNotADirectory(UfsError):
    pass


class UfsIsADirectory(UfsError):
    pass


class UfsInvalidPath(UfsError):
    """A path that is malformed or would leave the connector's root (``..``, a symlink out)."""


class UfsInvalidName(UfsInvalidPath):
    """A name the store cannot hold (S3: a key that is not UTF-8)."""


class UfsNameTooLong(UfsInvalidName):
    """A name, or the whole key it makes, longer than the store allows (S3: 1,024 bytes)."""


class UfsAccessDenied(UfsError):
    """The store refused the credentials or the operation (S3 403): not retried."""


class UfsBucketMissing(UfsError):
    pass


class UfsNoSpace(UfsError):
    """The store is full, or the writer's quota is used up (ENOSPC, EDQUOT)."""


class UfsReadOnly(UfsError):
    """The store refuses every change (a file system mounted read-only)."""


class UfsUnavailable(UfsError):
    """The store did not answer usefully after retries: endpoint down, timeouts, 5xx, throttling."""


class UfsUnsupported(UfsError):
    """The store cannot keep what was asked (extended attributes on a file system without
    them, or more than its metadata holds)."""

"""The engine's error hierarchy. The FUSE boundary maps these to errno in one place and the CLI
to exit codes; nothing below the engine knows either."""

from __future__ import annotations

import errno


class ShoalError(Exception):
    """Base of every error the engine reports to a caller."""

    errno: int = errno.EIO


class NotFound(ShoalError):
    errno = errno.ENOENT


class AlreadyExists(ShoalError):
    errno = errno.EEXIST


class NotADirectory(ShoalError):
    errno = errno.ENOTDIR


class IsADirectory(ShoalError):
    errno = errno.EISDIR


class NotEmpty(ShoalError):
    errno = errno.ENOTEMPTY


class InvalidName(ShoalError):
    errno = errno.EINVAL


class NameTooLong(InvalidName):
    errno = errno.ENAMETOOLONG


class InvalidArgument(ShoalError):
    errno = errno.EINVAL


class ReadOnly(ShoalError):
    errno = errno.EROFS


class NoSpace(ShoalError):
    errno = errno.ENOSPC


class Busy(ShoalError):
    errno = errno.EBUSY


class PermissionDenied(ShoalError):
    errno = errno.EACCES


class HomeLocked(ShoalError):
    """Another process has this Shoal home open."""

    errno = errno.EBUSY


class Unavailable(ShoalError):
    """A UFS did not answer usefully (endpoint down, timeouts, throttling after retries)."""

    errno = errno.EIO


class DataLost(ShoalError):
    """Data whose only copy was in the cache is gone (a damaged disk): it cannot be served."""

    errno = errno.EIO


class Refused(ShoalError):
    """The commit gate refused an entry that the state cannot apply: a change raced with another
    (the file it names was deleted meanwhile) or a bug. Nothing was appended."""

    errno = errno.ESTALE


class NotPermitted(ShoalError):
    """The operation is not allowed to anyone but an owner (sticky bit), or not at all (hard
    links): POSIX's EPERM, as opposed to a mode bit refusing access (EACCES)."""

    errno = errno.EPERM


class FileTooLarge(ShoalError):
    """A write or truncate would make a file larger than the mount allows."""

    errno = errno.EFBIG


class BadDescriptor(ShoalError):
    """A write through a handle that was not opened for writing."""

    errno = errno.EBADF


class StaleHandle(ShoalError):
    """An open file was unlinked or replaced meanwhile: its content is gone, and its old name
    may hold another file."""

    errno = errno.ESTALE


class CrossDevice(ShoalError):
    """A hard link between names on two stores (or one outside every store)."""

    errno = errno.EXDEV


class NoAttribute(ShoalError):
    """The inode has no extended attribute of that name (ENODATA, what getxattr answers)."""

    errno = errno.ENODATA


class NotSupported(ShoalError):
    """What the call asks is not kept here: an extended attribute outside user.*, a fallocate
    mode, or one the store cannot hold."""

    errno = errno.EOPNOTSUPP

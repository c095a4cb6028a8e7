"""A local directory as an under file system: a local disk, an NFS or SMB mount, any path.

It never reaches outside its root: every path is resolved (symlinks included) and refused if it
lands outside, so neither ``..`` nor a symlink pointing elsewhere exposes other files. Writes go
to a temporary file in the target directory, are fsynced and renamed over the target, and the
directory is fsynced: a reader sees the old file or the new one, and a crash leaves one of them.
A writer killed before its rename leaves its temporary file; ``clean_leftovers`` removes those
whose writer is provably gone (ufs/tempfiles.py), and listings leave them out.

Files and directories keep the store's own owner, permission bits and modification time: a
status carries them, and ``write``, ``mkdir`` and ``set_attrs`` give them what the engine asks
(a written file gets them on its temporary file, before the rename). Changing the owner needs
root (CAP_CHOWN): a daemon run by another user keeps the store's owner, logged once.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from threading import Event
from types import MappingProxyType
from typing import BinaryIO

from ufs import tempfiles
from ufs.atomic import fsync_dir, write_atomically
from ufs.base import NAME_MAX, NameRules, UfsAttrs, UfsStatus, UnderFS, join, normalize
from ufs.errors import (
    UfsAccessDenied,
    UfsError,
    UfsExists,
    UfsInvalidPath,
    UfsIsADirectory,
    UfsNameTooLong,
    UfsNoSpace,
    UfsNotADirectory,
    UfsNotEmpty,
    UfsNotFound,
    UfsReadOnly,
    UfsUnavailable,
    UfsUnsupported,
)
from ufs.resident import ResidentReader
from ufs.staged import StagedWrite

log = logging.getLogger(__name__)

CHUNK = 1 << 20
LONG_PATH = 3072  # bytes: longer paths are reached through a directory descriptor
PROC_FD = "/proc/self/fd/"

_ERRNO = {
    errno.ENOENT: UfsNotFound,
    errno.EEXIST: UfsExists,
    errno.ENOTEMPTY: UfsNotEmpty,
    errno.ENOTDIR: UfsNotADirectory,
    errno.EISDIR: UfsIsADirectory,
    errno.EACCES: UfsAccessDenied,
    errno.EPERM: UfsAccessDenied,
    errno.ENOSPC: UfsNoSpace,
    errno.EDQUOT: UfsNoSpace,
    errno.EROFS: UfsReadOnly,
    errno.ENAMETOOLONG: UfsNameTooLong,
    errno.EIO: UfsUnavailable,  # a failing disk, an NFS server that went away (hard mounts)
    errno.ETIMEDOUT: UfsUnavailable,
    errno.EOPNOTSUPP: UfsUnsupported,  # a file system without (user) extended attributes
}
XATTR_PREFIX = "user."
NO_XATTRS: Mapping[str, bytes] = MappingProxyType({})


def _user_xattrs(full: str) -> Mapping[str, bytes]:
    """The user.* extended attributes of the file at ``full`` (none on a file system without
    them)."""
    try:
        names = [n for n in os.listxattr(full) if n.startswith(XATTR_PREFIX)]
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EACCES, errno.EPERM):
            return NO_XATTRS
        raise
    if not names:
        return NO_XATTRS
    out = {}
    for name in names:
        try:
            out[name] = os.getxattr(full, name)
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed meanwhile
                raise
    return out


def _chunks_of(fd: int) -> Iterator[bytes]:
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        yield chunk
        offset += len(chunk)


def _fingerprint(st: os.stat_result) -> str:
    return f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}"


def _wanted(st: os.stat_result, offset: int, length: int) -> int:
    """How many bytes to ask a read of ``length`` at ``offset`` for: what a regular file holds
    there (a file that grew since its stat is then seen changed by its fingerprint)."""
    if not stat.S_ISREG(st.st_mode):
        return length
    return max(0, min(length, st.st_size - offset))


class LocalUnderFS(UnderFS):
    def __init__(self, root: str) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise UfsNotFound(f"local UFS root {root} is not a directory")
        self.root = real
        self.uri = f"file://{real}"
        self.rules = self.rules_at(real)
        self._chown_refused = False  # logged once: the owners asked for stay the store's
        self._resident = ResidentReader(real)  # reads the event loop may make itself

    @staticmethod
    def rules_at(root: str) -> NameRules:
        """Any bytes but '/' and NUL, each name at most the file system's NAME_MAX; no limit on
        the whole path (deeper than PATH_MAX is reached through descriptors, see ``_path``)."""
        try:
            name_max = os.pathconf(root, "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = -1
        return NameRules(name_max=name_max if name_max > 0 else NAME_MAX)

    @contextmanager
    def _path(self, path: str, *, make_parents: bool = False) -> Iterator[str]:
        """A path the OS accepts for ``path``, refused if it (or, for a new name, its parent)
        resolves outside the root.

        Trees deeper than PATH_MAX (4096 bytes) are legal in Shoal's namespace, but no system
        call takes such a path: then the parent directory is opened by walking from the root
        one name at a time (never following a symlink, so nothing leads out), and the path
        given is ``/proc/self/fd/<that directory>/<name>``, valid until the block ends.
        ``make_parents`` creates missing directories on that walk."""
        rel = normalize(path)
        full = os.path.join(self.root, rel) if rel else self.root
        if len(os.fsencode(full)) < LONG_PATH:
            real = os.path.realpath(full)
            if real != self.root and not real.startswith(self.root + os.sep):
                raise UfsInvalidPath(f"{self.uri}: {path!r} leads outside the UFS root")
            yield full
            return
        *parents, name = rel.split("/")
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parents:
                flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    inner = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not make_parents:
                        raise
                    try:
                        os.mkdir(f"{PROC_FD}{fd}/{part}")
                    except FileExistsError:
                        pass
                    inner = os.open(part, flags, dir_fd=fd)
                except OSError:  # ENOTDIR or ELOOP: a file, or a symlink we do not follow
                    self._refuse_symlink(fd, part, path)
                    raise
                os.close(fd)
                fd = inner
            self._refuse_symlink(fd, name, path)
            yield f"{PROC_FD}{fd}/{name}"
        finally:
            os.close(fd)

    def _refuse_symlink(self, dir_fd: int, name: str, path: str) -> None:
        try:
            if stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode):
                raise UfsInvalidPath(
                    f"{self.uri}: {path[:80]!r}...: symlinks are not followed in paths over"
                    f" {LONG_PATH} bytes"
                )
        except FileNotFoundError:
            pass  # a new name

    @contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        try:
            yield
        except UfsError:
            raise
        except OSError as exc:
            cls = _ERRNO.get(exc.errno or 0, UfsError)
            raise cls(f"{self.uri}: {path or '/'}: {exc.strerror or exc}") from exc

    def _status(
        self, rel: str, st: os.stat_result, xattrs: Mapping[str, bytes] | None = None
    ) -> UfsStatus:
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        if stat.S_ISDIR(st.st_mode):
            return UfsStatus(
                rel, True, 0, st.st_mtime_ns, "", mode=mode, uid=uid, gid=gid, xattrs=xattrs
            )
        fmt = stat.S_IFMT(st.st_mode)
        special = 0 if fmt == stat.S_IFREG else fmt
        return UfsStatus(
            rel, False, st.st_size, st.st_mtime_ns, _fingerprint(st),
            special, st.st_rdev if fmt in (stat.S_IFCHR, stat.S_IFBLK) else 0,
            mode=mode, uid=uid, gid=gid, xattrs=xattrs,
        )  # fmt: skip

    def _give(self, target: int | str, attrs: UfsAttrs) -> None:
        """Gives ``target`` (a descriptor or a path) ``attrs``: the owner first, as chown
        clears the setuid and setgid bits that the mode then sets."""
        if attrs.uid is not None or attrs.gid is not None:
            uid = -1 if attrs.uid is None else attrs.uid
            gid = -1 if attrs.gid is None else attrs.gid
            try:
                os.chown(target, uid, gid)
            except PermissionError:
                if not self._chown_refused:
                    self._chown_refused = True
                    log.warning(
                        "%s: this process (uid %d) may not change owners in the store: files"
                        " and directories keep the store's owner (run the daemon as root for"
                        " owners set through the mount to reach it)", self.uri, os.geteuid(),
                    )  # fmt: skip
        if attrs.mode is not None:
            os.chmod(target, attrs.mode & 0o7777)
        if attrs.mtime_ns is not None:
            atime = os.stat(target).st_atime_ns
            os.utime(target, ns=(atime, attrs.mtime_ns))

    def set_attrs(self, path: str, attrs: UfsAttrs) -> UfsStatus:
        rel = normalize(path)
        with self._errors(rel), self._path(rel) as full:
            self._give(full, attrs)
            return self._status(rel, os.stat(full))

    def stat(self, path: str) -> UfsStatus:
        rel = normalize(path)
        with self._errors(rel), self._path(rel) as full:
            return self._status(rel, os.stat(full))

    def list(self, path: str) -> Iterator[UfsStatus]:
        rel = normalize(path)
        dir_fd = -1
        with self._errors(rel), self._path(rel) as full:
            if full.startswith(PROC_FD):
                # Entries of a scandir by path are stat-ed by path, which dies with the walk's
                # descriptor; a scandir of a descriptor stats relative to it.
                dir_fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    it: Iterator[os.DirEntry[str]] = os.scandir(dir_fd)
                except BaseException:
                    os.close(dir_fd)
                    raise
            else:
                it = os.scandir(full)  # the directory stays open once scandir has it
        return self._entries(rel, full, it, dir_fd)

    def _entries(
        self, rel: str, base: str, it: Iterator[os.DirEntry[str]], dir_fd: int = -1
    ) -> Iterator[UfsStatus]:
        try:
            # Through the descriptor where the path is a walk's, which ends with the block.
            yield from self._statuses(rel, f"{PROC_FD}{dir_fd}" if dir_fd >= 0 else base, it)
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)

    def _statuses(self, rel: str, base: str, it: Iterator[os.DirEntry[str]]) -> Iterator[UfsStatus]:
        with self._errors(rel), it as entries:  # type: ignore[attr-defined]
            for entry in entries:
                if tempfiles.is_temp(entry.name):  # a write in flight, or a dead writer's
                    continue
                child = join(rel, entry.name)
                try:
                    if entry.is_symlink():
                        with self._path(child):  # a link out of the root is not in this UFS
                            pass
                    st = entry.stat()
                    xattrs = _user_xattrs(f"{base}/{entry.name}")
                except (UfsInvalidPath, FileNotFoundError):
                    continue
                yield self._status(child, st, xattrs)

    def read(self, path: str, offset: int, length: int) -> bytes:
        return self.read_checked(path, offset, length)[0]

    def read_checked(self, path: str, offset: int, length: int) -> tuple[bytes, str | None]:
        rel = normalize(path)
        self._resident.prepare()  # here, where waiting is allowed: the next reads may not wait
        with self._errors(rel):
            fd = self._open_inside(rel, path)
            try:
                # Asked for what the file holds, not for ``length``: a pread of a whole block
                # (4 MiB) for a 110 KB file allocates and maps 4 MiB, then shrinks it (~60 µs
                # of CPU a read, and a TLB shootdown of every thread when it is unmapped).
                want = _wanted(os.fstat(fd), offset, length)
                data = os.pread(fd, want, offset)  # a directory: EISDIR, UfsIsADirectory
                # Stated after the read, of the same open file: a write that changed the
                # bytes read moved its mtime (or size) by then; a file renamed over it since
                # is another inode, and not what was read.
                return data, _fingerprint(os.fstat(fd))
            finally:
                os.close(fd)

    def read_resident(self, path: str, offset: int, length: int) -> tuple[bytes, str] | None:
        """``read_checked`` if the kernel can answer it from its caches (ufs/resident.py):
        a path inside the root whose names and bytes it holds; else None, at once."""
        try:
            got = self._resident.read(normalize(path), offset, length)
        except UfsInvalidPath:
            return None
        return None if got is None else (got[0], _fingerprint(got[1]))

    def close(self) -> None:
        self._resident.close()

    def _open_inside(self, rel: str, path: str) -> int:
        """``rel`` opened for reading, refused if it resolves outside the root. Opened as a
        bare reference first (O_PATH: no device or FIFO is opened, nothing waits), its resolved
        path read back from /proc, then opened through that reference: it checks the very file
        opened, in four system calls rather than ``_path``'s one per path component."""
        full = os.path.join(self.root, rel) if rel else self.root
        if len(os.fsencode(full)) >= LONG_PATH:
            with self._path(rel) as reachable:
                return os.open(reachable, os.O_RDONLY | os.O_CLOEXEC)
        ref = os.open(full, os.O_PATH | os.O_CLOEXEC)
        try:
            real = os.readlink(f"{PROC_FD}{ref}")
            if real != self.root and not real.startswith(self.root + os.sep):
                raise UfsInvalidPath(f"{self.uri}: {path!r} leads outside the UFS root")
            return os.open(f"{PROC_FD}{ref}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(ref)

    def write(self, path: str, source: BinaryIO, attrs: UfsAttrs | None = None) -> UfsStatus:
        rel = normalize(path)
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        parent, _, name = rel.rpartition("/")
        with self._errors(rel):
            self.mkdir(parent)
            with self._path(rel) as target:
                if os.path.isdir(target):
                    raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
                chunks = iter(lambda: source.read(CHUNK), b"")
                finish = None if attrs is None else partial(self._give, attrs=attrs)
                write_atomically(target, chunks, temp_name=tempfiles.temp_name(), finish=finish)
            return self.stat(rel)

    def stage(self, path: str, spool_dir: str | None = None) -> StagedWrite | None:
        """A temporary file for ``path`` (named as ours: ufs/tempfiles.py) at the root, not
        beside it: a directory renamed or removed while the file is written is not held by
        it, and it is never in the way of a name."""
        rel = normalize(path)
        if not rel:
            raise UfsIsADirectory(f"{self.uri}: the root is a directory")
        temp = os.path.join(self.root, tempfiles.temp_name())
        with self._errors(rel):
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return StagedWrite(fd, temp)

    def land(self, staged: StagedWrite, path: str, attrs: UfsAttrs | None = None) -> UfsStatus:
        """As ``write`` lands its temporary file: owner and mode, fsync, rename, the target's
        directory fsynced. (The root's is not: a crash that forgets the rename there leaves a
        second name of the file, a dead writer's temporary file that a start sweeps.) Copied
        instead where it cannot be renamed: a target on another file system below the root,
        a temporary file removed by someone else (the descriptor still holds the bytes)."""
        rel = normalize(path)
        with self._errors(rel):
            self.mkdir(rel.rpartition("/")[0])  # as write does
        with self._errors(rel), self._path(rel) as target:
            if os.path.isdir(target):
                raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
            finish = None if attrs is None else partial(self._give, attrs=attrs)
            if finish is not None:
                finish(staged.fd)
            os.fsync(staged.fd)
            try:
                os.rename(staged.temp, target)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOENT):
                    raise
                write_atomically(
                    target, _chunks_of(staged.fd), temp_name=tempfiles.temp_name(), finish=finish
                )
                staged.discard()
                return self.stat(rel)
            staged.landed = True
            fsync_dir(os.path.dirname(target))
        return self.stat(rel)

    def link(self, src: str, dst: str) -> UfsStatus:
        """A real hard link, made under a temporary name and renamed over ``dst``: a reader
        of ``dst`` sees its old file or the link, and a crash leaves one of them."""
        a, b = normalize(src), normalize(dst)
        with self._errors(b):
            self.mkdir(b.rpartition("/")[0])
        with self._errors(a), self._path(a) as full_a, self._path(b) as full_b:
            if os.path.isdir(full_a):
                raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
            temp = os.path.join(os.path.dirname(full_b), tempfiles.temp_name())
            os.link(full_a, temp, follow_symlinks=False)
            try:
                os.rename(temp, full_b)
            except BaseException:
                os.unlink(temp)
                raise
            if os.path.lexists(temp):
                # ``dst`` was a link of the same file already (a name relinked after a write,
                # or handed over): rename(2) then does nothing and leaves the temporary name,
                # which would keep its directory from ever being removed.
                os.unlink(temp)
            fsync_dir(os.path.dirname(full_b))
        return self.stat(b)

    def mknod(self, path: str, mode: int, rdev: int, attrs: UfsAttrs | None = None) -> UfsStatus:
        rel = normalize(path)
        with self._errors(rel):
            self.mkdir(rel.rpartition("/")[0])
        with self._errors(rel), self._path(rel) as full:
            os.mknod(full, mode, rdev)
            if attrs is not None:  # the caller's owner, and its mode whatever our umask is
                self._give(full, attrs)
            fsync_dir(os.path.dirname(full))
        return self.stat(rel)

    def get_xattrs(self, path: str) -> dict[str, bytes]:
        rel = normalize(path)
        with self._errors(rel), self._path(rel) as full:
            return dict(_user_xattrs(full))

    def set_xattrs(self, path: str, xattrs: Mapping[str, bytes]) -> None:
        rel = normalize(path)
        with self._errors(rel), self._path(rel) as full:
            for name in os.listxattr(full, follow_symlinks=False):
                if name.startswith(XATTR_PREFIX) and name not in xattrs:
                    os.removexattr(full, name, follow_symlinks=False)
            for name, value in xattrs.items():
                os.setxattr(full, name, value, follow_symlinks=False)

    def leftovers(self) -> Sequence[str]:
        return tempfiles.sweep(self.root, remove=False)

    def clean_leftovers(self, stop: Event | None = None) -> int:
        """Removes the temporary files of writers that died (kill -9, a crash) anywhere below
        the root; files of live writers, of other hosts and of users stay."""
        return len(tempfiles.sweep(self.root, stop))

    def delete(self, path: str) -> None:
        rel = normalize(path)
        with self._errors(rel), self._path(rel) as full:
            if os.path.isdir(full) and not os.path.islink(full):
                raise UfsIsADirectory(f"{self.uri}: {rel} is a directory")
            os.unlink(full)
            fsync_dir(os.path.dirname(full))

    def mkdir(self, path: str, attrs: UfsAttrs | None = None) -> None:
        rel = normalize(path)
        with self._errors(rel), self._path(rel, make_parents=True) as full:
            if os.path.isdir(full):
                return
            os.makedirs(full, exist_ok=True)
            if attrs is not None:
                self._give(full, attrs)
            fsync_dir(os.path.dirname(full))

    def rmdir(self, path: str) -> None:
        rel = normalize(path)
        if not rel:
            raise UfsInvalidPath(f"{self.uri}: the root cannot be removed")
        with self._errors(rel), self._path(rel) as full:
            os.rmdir(full)
            fsync_dir(os.path.dirname(full))

    def rename(self, src: str, dst: str) -> None:
        a, b = normalize(src), normalize(dst)
        with self._errors(a):
            self.mkdir(b.rpartition("/")[0])
        with self._errors(a), self._path(a) as full_a, self._path(b) as full_b:
            if os.path.isdir(full_a):
                raise UfsIsADirectory(f"{self.uri}: {a} is a directory")
            os.rename(full_a, full_b)
            fsync_dir(os.path.dirname(full_b))
            if os.path.dirname(full_a) != os.path.dirname(full_b):
                fsync_dir(os.path.dirname(full_a))

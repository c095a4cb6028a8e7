"""The mount table: which UFS is attached where in the namespace (Alluxio's unified namespace).

Mounting and unmounting are journaled (AddMount / RemoveMount) like every other mutation; the
secrets among a mount's options go to the home's credentials file and the entry names them
(engine/credentials.py). A mount is refused when it would shadow data: over a non-empty
directory, or over a UFS location that overlaps one already mounted (the same files would have
two names, and two caches).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from engine import metrics
from engine.credentials import CredentialStore, holds_values, resolve, split_secrets
from engine.errors import (
    AlreadyExists,
    Busy,
    InvalidArgument,
    InvalidName,
    IsADirectory,
    NameTooLong,
    NoSpace,
    NotADirectory,
    NotEmpty,
    NotFound,
    NotSupported,
    PermissionDenied,
    ReadOnly,
    ShoalError,
    Unavailable,
)
from engine.namespace import Namespace
from engine.state import Mount
from journal import entries as E
from ufs.base import UnderFS
from ufs.errors import (
    UfsAccessDenied,
    UfsBucketMissing,
    UfsError,
    UfsExists,
    UfsInvalidName,
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
from ufs.uri import open_ufs

log = logging.getLogger(__name__)

# Mount options the engine reads itself; the rest go to the connector.
ENGINE_OPTIONS = frozenset({"sync_interval", "write_type", "read_type", "prefetch", "list_ahead"})
_SWITCHES = ("prefetch", "list_ahead")
# Engine options that are switches: their values, and what a mount without them gets.
_FLAGS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}  # fmt: skip


def mount_flag(mount: Mount, name: str) -> bool:
    """A switch among ``mount``'s options (``prefetch``, ``list_ahead``); absent, on for a
    read-only mount (a dataset) and off for a writable one. Values were checked when it was
    mounted."""
    value = mount.options.get(name)
    return mount.readonly if value is None else _FLAGS.get(value.lower(), mount.readonly)


def check_flags(options: Mapping[str, str]) -> None:
    """InvalidArgument naming a switch option whose value is not one."""
    for name in _SWITCHES:
        value = options.get(name)
        if value is not None and value.lower() not in _FLAGS:
            raise InvalidArgument(f"mount option {name}={value!r}: use true or false")


Opener = Callable[[str, Mapping[str, str], Mapping[str, str] | None], UnderFS]


def engine_error(exc: UfsError) -> ShoalError:
    """The engine's error for a connector's failure (the message is the connector's)."""
    for ufs_cls, cls in (
        (UfsNotFound, NotFound),
        (UfsBucketMissing, NotFound),
        (UfsAccessDenied, PermissionDenied),
        (UfsUnavailable, Unavailable),
        (UfsNameTooLong, NameTooLong),
        (UfsInvalidName, InvalidName),
        (UfsInvalidPath, InvalidArgument),
        (UfsNoSpace, NoSpace),
        (UfsReadOnly, ReadOnly),
        (UfsUnsupported, NotSupported),
        # The store may hold what the namespace does not show yet (a name added behind the
        # mount's back): its own answer is the POSIX one, not EINVAL.
        (UfsNotEmpty, NotEmpty),
        (UfsExists, AlreadyExists),
        (UfsNotADirectory, NotADirectory),
        (UfsIsADirectory, IsADirectory),
    ):
        if isinstance(exc, ufs_cls):
            return cls(str(exc))
    return InvalidArgument(str(exc))


@contextmanager
def ufs_errors() -> Iterator[None]:
    """Turns a connector's error into the engine's, so callers see one hierarchy."""
    try:
        yield
    except UfsError as exc:
        if type(exc) is UfsError:  # of no known kind: its origin kept, for the frontend's log
            raise engine_error(exc) from exc
        raise engine_error(exc) from None


def _for_connector(options: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in options.items() if k not in ENGINE_OPTIONS}


def location(uri: str) -> tuple[str, str, tuple[str, ...]]:
    """(scheme, bucket or "", path components) of a UFS URI, for overlap checks."""
    if uri.startswith("/"):
        return ("file", "", tuple(p for p in os.path.realpath(uri).split("/") if p))
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if parts.scheme == "file":
        path = os.path.realpath(path)
    return (parts.scheme, parts.netloc, tuple(p for p in path.split("/") if p))


def overlaps(a: str, b: str) -> bool:
    sa, ba, pa = location(a)
    sb, bb, pb = location(b)
    n = min(len(pa), len(pb))
    return (sa, ba) == (sb, bb) and pa[:n] == pb[:n]


class MountTable:
    def __init__(
        self,
        ns: Namespace,
        credentials: CredentialStore,
        opener: Opener = open_ufs,
        given: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        """``given``: secrets this process was handed for mounts (directory id -> secrets and
        references), kept in memory only; they replace the stored ones of those mounts."""
        self.ns = ns
        self.credentials = credentials
        self.opener = opener
        # Remote stores are swept (a request each) only after an unclean stop: a clean one
        # completed or aborted every upload it began (ufs/s3multipart.py); fsck lists the rest.
        self.sweep_remote = False
        self._given: dict[int, dict[str, str]] = {k: dict(v) for k, v in (given or {}).items()}
        self._connectors: dict[int, UnderFS] = {}
        # Background removal of what dead writers left in a writable mount's store, once per
        # connector opened: mount id -> (its thread, the event that stops it early).
        self._cleanups: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._starter: threading.Thread | None = None  # clean_at_start's
        self._lock = threading.Lock()

    def mount(
        self,
        path: str,
        uri: str,
        options: Mapping[str, str] | None = None,
        readonly: bool = False,
        *,
        keep_secrets: bool = True,
    ) -> Mount:
        """Attaches ``uri`` at directory ``path`` once the UFS answers; returns the mount.
        ``keep_secrets`` false (a daemon handed its secrets): secret values are kept in this
        process's memory only; references to them (``*_file``) are stored all the same."""
        public, hidden = split_secrets(dict(options or {}))
        check_flags(public)
        try:
            uri.encode("utf-8")  # checkpoints keep it as text
        except UnicodeEncodeError:
            raise InvalidArgument(
                f"UFS URI {uri!r} is not UTF-8: mount it through a path that is (a symlink)"
            ) from None
        ns = self.ns
        node = ns.lookup(path)
        self._check_target(path, node.id, uri)
        opened = resolve(hidden)
        with ufs_errors():
            ufs = self._open(uri, _for_connector(public), opened or None)  # reachable?
        stored = hidden if keep_secrets or not holds_values(hidden) else {}
        credential = self.credentials.add(stored) if stored else None
        try:
            with ns.lock:
                self._check_target(path, node.id, uri)  # again: the UFS check ran unlocked
                seq = ns.gate.commit(
                    E.AddMount(node.id, uri, public, readonly, credential, time.time_ns())
                )
            ns.gate.durable(seq)
        except BaseException:
            ufs.close()
            if credential:
                self.credentials.remove(credential)
            raise
        with self._lock:
            if hidden and not stored:
                self._given[node.id] = dict(hidden)
            self._connectors[node.id] = ufs
        if not readonly:
            self._clean_leftovers(node.id, ufs)
        return ns.state.mounts[node.id]

    def _check_target(self, path: str, node_id: int, uri: str) -> None:
        ns = self.ns
        node = ns.tree.find(node_id)
        if node is None:
            raise NotFound(f"{path} does not exist")
        if node.children is None:
            raise NotADirectory(f"{path} is not a directory")
        if node.id in ns.state.mounts:
            raise AlreadyExists(f"{path} is already a mount point; unmount it first")
        if node.children:
            raise NotEmpty(
                f"{path} is not empty: mounting over it would hide what it holds;"
                " mount on an empty directory"
            )
        enclosing = self.mount_of(node_id)
        if enclosing is not None and enclosing.readonly:
            raise ReadOnly(f"{path} is inside the read-only mount of {enclosing.uri}")
        for other in ns.state.mounts.values():
            if overlaps(other.uri, uri):
                raise Busy(
                    f"{uri} overlaps {other.uri}, already mounted at"
                    f" {self._path(other)}: the same data would have two names"
                )

    def unmount(self, path: str) -> None:
        """Detaches the mount at ``path``: what Shoal knew below it leaves the namespace (the
        UFS keeps its data); the mount point stays as an empty directory."""
        ns = self.ns
        with ns.lock:
            node = ns.lookup(path)
            mount = ns.state.mounts.get(node.id)
            if mount is None:
                raise InvalidArgument(f"{path} is not a mount point")
            assert node.children is not None
            for child in list(node.children.values()):
                if child.children and ns.holds_mount(child):
                    raise Busy(f"{path} holds another mount point; unmount that first")
            seq = 0
            now = time.time_ns()
            for name, child in sorted(node.children.items()):
                seq = ns.gate.commit(E.Delete(child.id, node.id, name, now))
            seq = ns.gate.commit(E.RemoveMount(node.id, now))
        ns.gate.durable(seq)
        self._stop_cleanup(node.id)
        with self._lock:
            ufs = self._connectors.pop(node.id, None)
        if ufs is not None:
            ufs.close()
        with self._lock:
            self._given.pop(node.id, None)
        if mount.credential:
            self.credentials.remove(mount.credential)

    def mount_of(self, node_id: int) -> Mount | None:
        """The mount whose subtree holds inode ``node_id`` (the nearest enclosing one)."""
        mounts, table = self.ns.state.mounts, self.ns.tree.table
        node = self.ns.tree.find(node_id)
        while node is not None:
            m = mounts.get(node.id)
            if m is not None:
                return m
            # A named node's parent is in the table (as path_of's): no bounds check per step
            node = table[node.parent] if node.parent != node.id else None
        return None

    def _path(self, mount: Mount) -> str:
        node = self.ns.tree.find(mount.id)
        return self.ns.path_of(node) if node is not None else f"<inode {mount.id}>"

    def opened(self, mount: Mount) -> UnderFS | None:
        """The connector of ``mount`` if it is open already; None (never waits) if not."""
        return self._connectors.get(mount.id)  # no lock: one dict lookup is atomic

    def connector(self, mount: Mount) -> UnderFS:
        """The connector of ``mount``, opened at first use: with the secrets this process was
        handed for it, else those of the credentials file (values, or files read again now)."""
        with self._lock:
            ufs = self._connectors.get(mount.id)
            hidden = self._given.get(mount.id)
        if ufs is not None:
            return ufs
        ufs = self.open_apart(mount, hidden)
        with self._lock:
            kept = self._connectors.setdefault(mount.id, ufs)
        if kept is not ufs:  # another thread opened it first
            ufs.close()
        elif not mount.readonly:
            self._clean_leftovers(mount.id, ufs)
        return kept

    def open_apart(self, mount: Mount, hidden: Mapping[str, str] | None = None) -> UnderFS:
        """A new connector of ``mount``, the caller's to close: kept by no one, and sweeping
        nothing (fsck reports leftovers before it removes any)."""
        if not hidden and mount.credential:
            hidden = self.credentials.get(mount.credential)
            if hidden is None:
                raise PermissionDenied(
                    f"the credentials of {mount.uri} ({mount.credential}) are missing from"
                    f" {self.credentials.path}; unmount and mount it again with its keys"
                )
        opened = resolve(hidden) if hidden else None
        with ufs_errors():
            return self._open(mount.uri, _for_connector(mount.options), opened)

    def _clean_leftovers(self, mount_id: int, ufs: UnderFS) -> None:
        """Starts removing, in the background, what writers that died left in the store (a
        local UFS: temporary files of a daemon killed mid-write); never for a read-only mount,
        which promises not to change its store."""
        if location(ufs.uri)[0] != "file" and not self.sweep_remote:
            return
        stop = threading.Event()

        def run() -> None:
            try:
                removed = ufs.clean_leftovers(stop)
            except Exception as exc:  # a cleanup is a courtesy: a failure costs only space
                log.warning("cleaning leftovers of dead writers in %s failed: %s", ufs.uri, exc)
                return
            if removed:
                log.info("removed %d leftover temporary file(s) from %s", removed, ufs.uri)

        thread = threading.Thread(target=run, name=f"ufs-cleanup-{mount_id}", daemon=True)
        with self._lock:
            self._cleanups[mount_id] = (thread, stop)
        thread.start()

    def _stop_cleanup(self, mount_id: int) -> None:
        with self._lock:
            cleanup = self._cleanups.pop(mount_id, None)
        if cleanup is not None:
            cleanup[1].set()
            cleanup[0].join()

    def clean_at_start(self) -> None:
        """At start-up, opens the connector of every writable local mount in the background, so
        that what a killed daemon left in it is swept now, not at the mount's first use. Other
        stores open at first use as before: a start sends them no request."""
        local = [
            m
            for m in self.ns.state.mounts.values()
            if not m.readonly and location(m.uri)[0] == "file"
        ]
        if not local:
            return

        def run() -> None:
            for mount in local:
                try:
                    self.connector(mount)
                except ShoalError as exc:  # the mount's first use reports it to its caller
                    log.warning("opening %s at start-up failed: %s", mount.uri, exc)

        self._starter = threading.Thread(target=run, name="ufs-cleanup-start", daemon=True)
        self._starter.start()

    def wait_for_cleanups(self) -> None:
        """Waits until the background cleanups started so far have finished."""
        if self._starter is not None:
            self._starter.join()
        with self._lock:
            threads = [thread for thread, _stop in self._cleanups.values()]
        for thread in threads:
            thread.join()

    def _open(
        self, uri: str, options: Mapping[str, str], hidden: Mapping[str, str] | None
    ) -> UnderFS:
        ufs = self.opener(uri, options, hidden)
        return metrics.CountedUnderFS(ufs) if metrics.ENABLED else ufs

    def open_through(self, wrap: Callable[[Opener], Opener]) -> None:
        """Stores are opened through ``wrap(opener)`` from now on (cluster mode's connector,
        engine/cluster/client.py). Those opened already (``clean_at_start``'s local ones, in the
        background since the engine opened) are closed, their cleanups stopped: their next use
        opens them again through it, and starts the cleanup again."""
        if self._starter is not None:
            self._starter.join()
        for mount_id in list(self._cleanups):
            self._stop_cleanup(mount_id)
        with self._lock:
            self.opener = wrap(self.opener)
            connectors, self._connectors = self._connectors, {}
        for ufs in connectors.values():
            ufs.close()

    def listing(self) -> list[tuple[str, Mount]]:
        return sorted((self._path(m), m) for m in self.ns.state.mounts.values())

    def close(self) -> None:
        if self._starter is not None:
            self._starter.join()  # local opens only: quick, and none may start after this
        for mount_id in list(self._cleanups):
            self._stop_cleanup(mount_id)
        with self._lock:
            connectors, self._connectors = self._connectors, {}
        for ufs in connectors.values():
            ufs.close()

"""The mount daemon: engine, cache and FUSE in one process (the embedded default).

Its life: clear a dead mount left on the mountpoint by a killed daemon, open the home (the
home's lock refuses a second daemon), attach the UFS at the namespace's root, mount, say
"ready" to whoever started it, serve until unmounted (``shoal umount``, ``fusermount3 -u``) or
told to stop (SIGTERM, SIGINT), then finish what is in flight, flush the journal and write a
checkpoint. The kernel names the mount ``shoal:<home>``, which is how ``shoal umount`` finds the
daemon of a mountpoint.
"""

from __future__ import annotations

import errno
import gc
import logging
import logging.handlers
import os
import signal
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyfuse3
import trio

from engine import exporter
from engine.credentials import split_secrets, take_environment_secrets
from engine.engine import Engine
from engine.errors import Busy, InvalidArgument, NotADirectory, NotEmpty, NotFound
from fuse import fallocate
from fuse.access import refusal_hint
from fuse.admin import AdminServer, CommandRunner
from fuse.clientserver import ClientServer
from fuse.mountinfo import FSNAME_PREFIX, PID_FILE, pid_file_text, served, shoal_mounts
from fuse.operations import ShoalOperations
from fuse.proctitle import set_title
from fuse.sdnotify import Notifier
from fuse.serving import ServeOptions, WorkerService, start_role
from journal.storage import PRIVATE_FILE_MODE, makedirs_private
from journal.switching import shorten_switch_interval

if TYPE_CHECKING:
    from engine.cluster.client import ClusterClient

log = logging.getLogger(__name__)

LOG_DIR = "logs"
LOG_FILE = "shoal.log"
SPOOL_DIR = "spool"


def clear_dead_mount(mountpoint: str, nonempty: bool = False) -> None:
    """A daemon killed with SIGKILL leaves its mount behind (answering ENOTCONN, or stale
    attributes from the kernel's cache): detach it. Anything else mounted there is refused, and
    so is a directory with files (the mount would hide them) unless ``nonempty``."""
    dead = served(mountpoint) is False
    try:
        os.stat(mountpoint)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise NotFound(f"mountpoint {mountpoint} does not exist") from None
        if exc.errno != errno.ENOTCONN:
            raise
        dead = True
    if dead:
        log.warning("%s: clearing the mount of a daemon that died", mountpoint)
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False, capture_output=True)
    if not os.path.isdir(mountpoint):
        raise NotADirectory(f"mountpoint {mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise Busy(f"{mountpoint} is already a mount point; unmount it first")
    if not nonempty and os.listdir(mountpoint):
        raise NotEmpty(
            f"mountpoint {mountpoint} is not empty: the mount would hide its files; empty it,"
            " choose another, or pass -o nonempty to mount over them"
        )


def attach_root(engine: Engine, uri: str, options: dict[str, str], readonly: bool) -> None:
    """The UFS at the namespace's root; a home that already serves it is reused, as it was
    mounted: a different -o ro, or different UFS options, are refused rather than silently
    ignored (no options: the stored ones). Secrets given now were handed to the engine when it
    opened, for this run only; without them, those the home keeps (references to files, or
    values an older version or ``shoal fs mount`` stored) are used."""
    root = engine.ns.tree.root
    current = engine.ns.state.mounts.get(root.id)
    if current is None:
        engine.mounts.mount("/", uri, options, readonly=readonly, keep_secrets=False)
        return
    if current.uri.rstrip("/") != uri.rstrip("/"):
        raise InvalidArgument(
            f"this home already serves {current.uri}, not {uri}: use another --home for"
            " another store"
        )
    public, _secrets = split_secrets(options)  # none given: the stored ones are used
    changed = sorted(k for k in public.keys() | current.options.keys()
                     if public and public.get(k) != current.options.get(k))  # fmt: skip
    if current.readonly != readonly or changed:
        what = "read-only" if current.readonly else "read-write"
        raise InvalidArgument(
            f"this home serves {uri} {what}"
            + (f" with other options ({', '.join(changed)})" if changed else "")
            + ": mount it as it was, or use another --home"
        )


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating log whose files only their owner can read (0600)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        # A name that is not UTF-8 in a message is written escaped, not lost with the record.
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors="backslashreplace")


# Loggers that -o debug makes verbose. Not the root: botocore's debug output carries request
# headers (session tokens among them), and secrets never reach the logs.
OWN_LOGGERS = ("engine", "journal", "ufs", "fuse", "recovery", "pyfuse3")


def setup_logging(home: str, level: str) -> None:
    """The daemon logs to <home>/logs/shoal.log (0600), rotated at 10 MiB, five files kept."""
    directory = os.path.join(home, LOG_DIR)
    makedirs_private(directory)
    handler = _PrivateRotatingFile(
        os.path.join(directory, LOG_FILE), maxBytes=10 << 20, backupCount=5
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(max(logging.INFO, getattr(logging, level)))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(getattr(logging, level))


def raise_readahead(mountpoint: str, kib: int = 1024) -> None:
    """Buffered reads are capped by the mount's readahead (128 KiB by default); large
    sequential reads run at twice the speed with 1 MiB. Needs root; best effort. The device
    comes from mountinfo: a stat of the mountpoint would be a request to this very daemon,
    which does not serve yet."""
    entry = shoal_mounts().get(mountpoint)
    if entry is None:
        return
    device = entry[1]
    path = f"/sys/class/bdi/{device}/read_ahead_kb"
    try:
        with open(path, "w") as f:
            f.write(str(kib))
    except OSError as exc:
        log.info("readahead left as it is (%s: %s)", path, exc.strerror)


def fuse_options(home: str, allow_other: bool, readonly: bool = False) -> set[str]:
    options = set(pyfuse3.default_options)  # default_permissions: the kernel checks modes
    # libfuse splits options at commas and takes a backslash as an escape: a home path holding
    # either must be escaped, or it would end the option (or start an unknown one).
    fsname = (FSNAME_PREFIX + home).replace("\\", "\\\\").replace(",", "\\,")
    options |= {f"fsname={fsname}", "subtype=shoal", "noatime"}
    if allow_other:
        options.add("allow_other")
    if readonly:
        # Read-only to the kernel too (nothing inside a read-only root may be mounted
        # writable): on a writable mount every READ marks the file's access time stale, and
        # its next open costs a GETATTR round trip, even with noatime.
        options.add("ro")
    return options


async def _serve(notifier: Notifier) -> None:
    """Serves until unmounted or signalled; systemd (a unit of Type=notify) hears READY=1 once
    the mount is live and answering, STOPPING=1 when the daemon starts to flush and stop."""
    async with trio.open_nursery() as nursery:

        async def stop_on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("signal %d: unmounting", signum)
                    pyfuse3.terminate()
                    return

        nursery.start_soon(stop_on_signal)
        notifier.notify("READY=1", f"MAINPID={os.getpid()}", "STATUS=serving")
        try:
            await pyfuse3.main(min_tasks=1, max_tasks=64)
        finally:
            notifier.notify("STOPPING=1", "STATUS=flushing and checkpointing")
        nursery.cancel_scope.cancel()


def _mount(ops: ShoalOperations, mountpoint: str, options: set[str]) -> None:
    try:
        pyfuse3.init(ops, mountpoint, options)
    except RuntimeError as exc:  # libfuse has printed its reason on stderr just before
        hint = refusal_hint("allow_other" in options)
        raise InvalidArgument(
            f"libfuse refused to mount {mountpoint} ({exc}); "
            + (hint or "its reason is on the line above")
        ) from None


def _write_pid_file(pid_file: str, mountpoint: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    with open(os.open(pid_file, flags, PRIVATE_FILE_MODE), "w") as f:
        f.write(pid_file_text(mountpoint))


def run(
    home: str,
    uri: str,
    mountpoint: str,
    *,
    overrides: dict[str, Any],
    ufs_options: dict[str, str],
    readonly: bool,
    nonempty: bool = False,
    config_file: str | None,
    ready: Callable[[], None],
    run_command: CommandRunner,
    cluster: ClusterClient | None = None,
    serve: ServeOptions | None = None,
) -> int:
    mountpoint = os.path.abspath(mountpoint)
    # Secrets come in ufs_options (the command line took its own environment's); none stays
    # in the environment, where children would inherit it.
    take_environment_secrets()
    set_title(f"shoal: serving {mountpoint}")
    clear_dead_mount(mountpoint, nonempty)
    _public, secrets = split_secrets(ufs_options)
    engine = Engine.open_home(home, overrides, config_file=config_file, root_secrets=secrets)
    if cluster is not None:  # before the store is opened: its reads go to the workers
        engine.mounts.open_through(cluster.opener)
    pid_file = os.path.join(home, PID_FILE)
    role: WorkerService | None = None
    try:
        config = engine.config
        setup_logging(home, config.log_level)
        if config.metrics_port:
            exporter.serve(engine, config.metrics_port)
        attach_root(engine, uri, ufs_options, readonly)
        if cluster is not None:  # other nodes' changes synced in as they come, ours told
            cluster.attach(engine.fs, short_circuit=config.cluster_short_circuit)
        role = start_role(engine, cluster, uri, serve)  # a worker too (--serve)
        spool = os.path.join(home, SPOOL_DIR)
        makedirs_private(spool)
        ops = ShoalOperations(engine, config, spool)
        _mount(ops, mountpoint, fuse_options(home, config.fuse_allow_other,
                                             engine.fs.read_only_root()))  # fmt: skip
        fallocate.install(ops.fallocate)
        engine.ns.gate.observers.append(ops.invalidator.observe)
        ops.invalidator.start()
        try:
            raise_readahead(mountpoint)
            _write_pid_file(pid_file, mountpoint)
            engine.ttl.start(config.cache_ttl_check_interval_s)
            admin = AdminServer(engine, home, run_command)
            admin.start()
            clients = ClientServer.serving(engine, home)  # the fsspec client's (docs/client.md)
            log.info("serving %s at %s (home %s)", uri, mountpoint, home)
            ready()
            # What start-up built (modules, connectors, the state) lives as long as the daemon:
            # out of the cyclic collector's sight, whose full collections otherwise stall the
            # event loop, and every request on it, for a scan of all of it.
            gc.freeze()
            # Every request is answered on the event loop; a background thread (storing a
            # block, reading ahead, uploading) holding the GIL delays each reply by up to a
            # switch interval: 5 ms by default, a tenth of that here.
            shorten_switch_interval()
            try:
                trio.run(_serve, Notifier())
            finally:
                if clients is not None:
                    clients.close()
                admin.close()
        finally:
            ops.invalidator.close()
            ops.abandon_writes()
            pyfuse3.close(unmount=True)
        log.info("unmounted %s", mountpoint)
    finally:
        _close(engine, role, pid_file)
    return 0


def _close(engine: Engine, role: WorkerService | None, pid_file: str) -> None:
    try:
        if role is not None:  # the lease revoked first: the others stop asking at once
            role.close()
    finally:
        try:
            # In-flight stores and uploads finish; MEM emptied; journal flushed, checkpoint.
            engine.close(release_memory=True)
        finally:
            try:
                os.unlink(pid_file)
            except FileNotFoundError:
                pass

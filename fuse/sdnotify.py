"""systemd's readiness protocol (sd_notify): one datagram to the AF_UNIX socket named by
$NOTIFY_SOCKET. A unit of ``Type=notify`` (``shoal service``, docs/operations.md) counts the
mount as started only once the daemon says READY=1, so units ordered after it find the mount
live; STOPPING=1 tells it the daemon is finishing (flushing, checkpointing) rather than hung.
Outside systemd the variable is unset and this does nothing."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

ENV = "NOTIFY_SOCKET"


class Notifier:
    """The socket named when the daemon started: it is taken out of the environment at once,
    so that nothing the daemon starts (the UFS's helpers) speaks for it."""

    def __init__(self) -> None:
        self.address = os.environ.pop(ENV, "")

    def notify(self, *fields: str) -> None:
        if not self.address:
            return
        address = self.address
        if address.startswith("@"):  # an abstract socket: a leading NUL byte in the kernel
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.setblocking(False)  # sent from the event loop: a full queue must not stall it
                s.sendto("\n".join(fields).encode(), address)
        except OSError as exc:  # the service manager went away: nothing to tell
            log.warning("could not notify %s: %s", self.address, exc.strerror or exc)

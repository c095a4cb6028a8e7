"""Why a user other than root may be refused a FUSE mount, said with what to do about it."""

from __future__ import annotations

import os
import stat

DEVICE = "/dev/fuse"
FUSE_CONF = "/etc/fuse.conf"


def _allows_other() -> bool:
    try:
        with open(FUSE_CONF) as f:
            return any(line.split("#")[0].strip() == "user_allow_other" for line in f)
    except OSError:
        return False


def refusal_hint(allow_other: bool) -> str:
    """What a non-root user must change for libfuse to mount ("" when nothing is known to be
    in the way): /dev/fuse not readable and writable by it, or -o allow_other without
    user_allow_other in /etc/fuse.conf."""
    if os.geteuid() == 0:
        return ""
    if not os.access(DEVICE, os.R_OK | os.W_OK):
        try:
            mode = f"mode {stat.S_IMODE(os.stat(DEVICE).st_mode):04o}"
        except OSError as exc:
            mode = exc.strerror or "missing"
        return (
            f"{DEVICE} ({mode}) cannot be opened by uid {os.geteuid()}: run shoal as root, or"
            f" let the user use it (a fuse group owning {DEVICE} with mode 0660, the user in"
            " that group)"
        )
    if allow_other and not _allows_other():
        return (
            f"-o allow_other needs user_allow_other in {FUSE_CONF} for a user other than"
            " root: add that line, or run shoal as root"
        )
    return ""

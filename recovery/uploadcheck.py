"""fsck's look at the remote stores' unfinished uploads: the multipart uploads a daemon killed
mid-write left under an S3 mount's prefix (ufs/s3parts.py). They are no object -- nothing of
them can be read or listed -- but their parts cost storage until aborted. Any start of a
writable mount aborts them (engine/mounts.py); ``shoal fsck`` lists them and ``--repair``
aborts them. A store that cannot be reached is noted, not failed: fsck judges the home."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.errors import ShoalError
from engine.mounts import location
from engine.state import Mount, State
from ufs.base import UnderFS
from ufs.errors import UfsError

# A mount's live connector (whose own writes in progress are never counted), or None.
Opened = Callable[[Mount], UnderFS | None]


@dataclass
class UploadReport:
    found: list[str] = field(default_factory=list)  # "URI: key (...)" of each
    aborted: int = 0
    unreadable: list[str] = field(default_factory=list)


def check_uploads(
    state: State, opened: Opened, open_apart: Callable[[Mount], UnderFS], repair: bool
) -> UploadReport:
    """The unfinished uploads no write in progress owns, in every writable remote mount;
    aborted with ``repair``."""
    report = UploadReport()
    for mount in sorted(state.mounts.values(), key=lambda m: m.id):
        if mount.readonly or location(mount.uri)[0] == "file":
            continue
        live = opened(mount)
        try:
            ufs = live or open_apart(mount)
        except (ShoalError, UfsError) as exc:
            report.unreadable.append(f"{mount.uri}: {exc}")
            continue
        try:
            found = list(ufs.leftovers())
            report.found += [f"{mount.uri}: {what}" for what in found]
            if repair and found:
                report.aborted += ufs.clean_leftovers()
        except (ShoalError, UfsError) as exc:
            report.unreadable.append(f"{mount.uri}: {exc}")
        finally:
            if live is None:
                ufs.close()
    return report

"""fsck's look at the mounted stores: what writers that died left there (a local UFS's
temporary files of a daemon killed mid-write). Only local stores are looked at: fsck runs on a
home with no daemon, and must not need the network or a store's credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.mounts import location
from engine.state import State
from ufs.errors import UfsError
from ufs.uri import open_ufs


@dataclass
class StoreReport:
    leftovers: list[str] = field(default_factory=list)  # "URI: path" of each
    removed: int = 0
    unreadable: list[str] = field(default_factory=list)  # stores that could not be looked at


def check_stores(state: State, repair: bool) -> StoreReport:
    """Leftovers in every writable local mount; removed with ``repair`` (only those of writers
    that provably died: ufs/tempfiles.py)."""
    report = StoreReport()
    for mount in sorted(state.mounts.values(), key=lambda m: m.id):
        if mount.readonly or location(mount.uri)[0] != "file":
            continue
        try:
            ufs = open_ufs(mount.uri)
        except UfsError as exc:
            report.unreadable.append(f"{mount.uri}: {exc}")
            continue
        try:
            found = list(ufs.leftovers())
            report.leftovers += [f"{mount.uri}: {path}" for path in found]
            if repair and found:
                report.removed += ufs.clean_leftovers()
        finally:
            ufs.close()
    return report

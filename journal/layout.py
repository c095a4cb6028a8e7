"""Names of the files in a journal directory, and what a listing of it holds.

<journal>/log-<first_seq:020d>.seg        log segments
<journal>/log-<first_seq:020d>.seg.broken a damaged segment copied aside by repair
<journal>/seen                            first_seq of the newest segment ever created
<journal>/checkpoints/checkpoint-<seq:020d>-<crc32:08x>.sqlite
<journal>/checkpoints/checkpoint-…sqlite.broken  a checkpoint set aside by repair
<journal>/checkpoints/.tmp-*              an interrupted checkpoint (removed at open)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from journal.storage import Storage, join

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
SEEN_FILE = "seen"
_SEGMENT = re.compile(r"^log-(\d{20})\.seg$")
_BROKEN = re.compile(r"^log-\d{20}\.seg\.broken(-\d+)?$")
_CHECKPOINT = re.compile(r"^checkpoint-(\d{20})-([0-9a-f]{8})\.sqlite$")
_BROKEN_CHECKPOINT = re.compile(r"^checkpoint-\d{20}-[0-9a-f]{8}\.sqlite\.broken(-\d+)?$")


def segment_name(first_seq: int) -> str:
    return f"log-{first_seq:020d}.seg"


def checkpoint_name(seq: int, crc: int) -> str:
    return f"checkpoint-{seq:020d}-{crc:08x}.sqlite"


@dataclass(frozen=True)
class CheckpointFile:
    seq: int
    crc: int
    path: str


@dataclass
class Listing:
    """What a journal directory holds, sorted by sequence number."""

    segments: list[tuple[int, str]] = field(default_factory=list)  # (first_seq, path)
    checkpoints: list[CheckpointFile] = field(default_factory=list)
    temporaries: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    seen: int | None = None


def list_journal(storage: Storage, root: str, *, warn: bool = True) -> Listing:
    """The journal directory's files by kind; stray files are warned of (``warn``) once per
    listing a user should hear of."""
    out = Listing()
    for name in storage.listdir(root):
        path = join(root, name)
        m = _SEGMENT.match(name)
        if m:
            out.segments.append((int(m.group(1)), path))
        elif name == SEEN_FILE:
            text = storage.read(path).decode("ascii", "replace").strip()
            out.seen = int(text) if text.isdigit() else None
        elif name == CHECKPOINT_DIR or _BROKEN.match(name):
            pass
        elif name.startswith(".tmp-"):
            out.temporaries.append(path)
        else:
            out.strays.append(path)
    cdir = join(root, CHECKPOINT_DIR)
    if storage.exists(cdir):
        for name in storage.listdir(cdir):
            path = join(cdir, name)
            m = _CHECKPOINT.match(name)
            if m:
                out.checkpoints.append(CheckpointFile(int(m.group(1)), int(m.group(2), 16), path))
            elif name.startswith(".tmp-"):
                out.temporaries.append(path)
            elif not _BROKEN_CHECKPOINT.match(name):
                out.strays.append(path)
    out.segments.sort()
    out.checkpoints.sort(key=lambda c: c.seq)
    for stray in out.strays if warn else ():
        log.warning("ignoring stray file %s in the journal directory", stray)
    return out


def set_aside(storage: Storage, root: str) -> list[str]:
    """The copies repair set aside (``*.broken``), segments and checkpoints."""
    out = [join(root, n) for n in storage.listdir(root) if _BROKEN.match(n)]
    cdir = join(root, CHECKPOINT_DIR)
    if storage.exists(cdir):
        out += [join(cdir, n) for n in storage.listdir(cdir) if _BROKEN_CHECKPOINT.match(n)]
    return out


def broken_name(storage: Storage, path: str) -> str:
    """A free name for a copy of ``path`` set aside before repair."""
    candidate = path + ".broken"
    n = 1
    while storage.exists(candidate):
        n += 1
        candidate = f"{path}.broken-{n}"
    return candidate

"""Running the real `shoal` command line in a subprocess, and building homes to run it on."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import msgpack

from journal.format import ScanEnd, frame, iter_records, parse_segment_header

ROOT = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "SHOAL_HOME"}
    out["PYTHONPATH"] = str(ROOT)
    out.update(extra)
    return out


def shoal(
    *args: str, home: Path | str | None = None, expect: int | None = 0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Runs `python -m cli.main [--home HOME] ARGS`; checks the exit code (unless
    ``expect`` is None) and that no traceback reached stderr."""
    cmd = [sys.executable, "-m", "cli.main"]
    if home is not None:
        cmd += ["--home", str(home)]
    cmd += list(args)
    kwargs.setdefault("env", env())
    kwargs.setdefault("timeout", 300)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kwargs)
    assert "Traceback" not in proc.stderr, proc.stderr
    if expect is not None:
        assert proc.returncode == expect, (
            f"{args}: exit {proc.returncode}, expected {expect}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def segments(home: Path) -> list[Path]:
    return sorted((home / "journal").glob("log-*.seg"))


def checkpoints(home: Path) -> list[Path]:
    return sorted((home / "journal" / "checkpoints").glob("checkpoint-*.sqlite"))


def rewrite_checkpoint(path: Path, *edits: str | Callable[[apsw.Connection], None]) -> Path:
    """Changes a checkpoint's database with ``edits`` (SQL, or functions of the connection) and
    stores it under the name its new CRC gives it, so it still verifies: a checkpoint that is
    valid but says something else."""
    conn = apsw.Connection(":memory:")
    conn.deserialize("main", path.read_bytes())
    for edit in edits:
        if isinstance(edit, str):
            conn.execute(edit)
        else:
            edit(conn)
    data = conn.serialize("main")
    conn.close()
    seq = path.name.split("-")[1]
    new = path.with_name(f"checkpoint-{seq}-{zlib.crc32(data):08x}.sqlite")
    path.unlink()
    new.write_bytes(data)
    new.chmod(0o600)  # as Shoal writes it: only the damage planted is to be reported
    return new


def rename_inode(old: str, new: str) -> Callable[[apsw.Connection], None]:
    """An edit for ``rewrite_checkpoint``: the inode named ``old`` is named ``new`` (inodes are
    stored as msgpack chunks [palette, rows]; the name is a row's third column)."""

    def edit(conn: apsw.Connection) -> None:
        for first_id, blob in list(conn.execute("SELECT first_id, rows FROM inode_chunks")):
            palette, rows = msgpack.unpackb(blob, use_list=True)
            for row in rows:
                if row[2] == old:
                    row[2] = new
            packed = msgpack.packb([palette, rows], use_bin_type=True)
            conn.execute("UPDATE inode_chunks SET rows = ? WHERE first_id = ?", (packed, first_id))

    return edit


def last_record_seq(segment: Path) -> int:
    """The sequence number of the last valid record of a segment (its first - 1 if empty)."""
    data = segment.read_bytes()
    first = parse_segment_header(data)
    last = first - 1
    for item in iter_records(data, first):
        if isinstance(item, ScanEnd):
            break
        last = item.seq
    return last


def record_offsets(segment: Path) -> list[tuple[int, int]]:
    """(seq, offset) of every valid record of a segment."""
    data = segment.read_bytes()
    out = []
    for item in iter_records(data, parse_segment_header(data)):
        if isinstance(item, ScanEnd):
            break
        out.append((item.seq, item.offset))
    return out


def append_record(home: Path, type_code: int, payload: bytes) -> int:
    """Appends a validly framed record to the newest segment, as a writer would; returns its
    sequence number."""
    segment = segments(home)[-1]
    seq = last_record_seq(segment) + 1
    data = segment.read_bytes()
    *_, end = iter_records(data, parse_segment_header(data))
    assert isinstance(end, ScanEnd) and end.clean
    with open(segment, "r+b") as f:  # over the zeros preallocated after the last record
        f.seek(end.offset)
        f.write(frame(seq, type_code, payload))
    return seq

"""Names that are not UTF-8 in the log and in checkpoints (journal/fsnames.py): written as
msgpack ext type 1 of their bytes, read back as the same str by every decoder — entries.decode,
replay in this process, replay with a scanning process (its stream and its slow path), and a
checkpoint's chunks."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest

from engine.engine import Engine
from engine.snapshot import digest
from journal import entries as E
from journal import fsnames
from journal.journal import JournalOptions
from journal.storage import OsStorage
from tests.cli.shoal_cli import append_record

SEGMENT_SIZE = 16 << 10
RAW = [os.fsdecode(b"caf\xe9"), os.fsdecode(b"\xff\xfe"), os.fsdecode(b"na\xefve-%d")]


def test_an_entry_with_names_that_are_not_utf8_round_trips() -> None:
    entry = E.Rename(5, 1, RAW[0], 2, RAW[1], 77, None)
    payload = E.encode(entry)
    assert msgpack.ExtType(fsnames.RAW_NAME, b"caf\xe9") in msgpack.unpackb(payload)
    assert E.decode(E.type_code(entry), payload) == entry
    utf8 = E.MkDir(2, 1, "café", 0o755, 0, 0, 1)
    assert E.decode(1, E.encode(utf8)) == utf8
    assert msgpack.unpackb(E.encode(utf8)) == list(utf8)  # UTF-8 names: plain msgpack str
    with pytest.raises(ValueError, match="canonical"):
        E.encode(E.MkDir(2, 1, "\udcc3\udca9", 0o755, 0, 0, 1))  # bytes that are UTF-8


def _build(home: Path) -> str:
    """A log with names that are not UTF-8 over several segments, a checkpoint halfway;
    returns the state's digest."""
    options = JournalOptions(checkpoint_every=0, segment_size=SEGMENT_SIZE, group_commit=False)
    engine = Engine(OsStorage(str(home)), options)
    ns = engine.ns
    try:
        for half in range(2):
            top = f"/{RAW[0]}{half}"
            ns.mkdir(f"{top}/{RAW[1]}", parents=True)
            for i in range(150):
                node = ns.create(f"{top}/{RAW[2] % i}", 0o644, 1000, 1000)
                ns.complete(node.id, i, 4 << 20)
            for i in range(0, 150, 7):
                ns.rename(f"{top}/{RAW[2] % i}", f"{top}/{RAW[1]}/{RAW[2] % i}")
            for i in range(1, 150, 11):
                if i % 7:
                    ns.delete(f"{top}/{RAW[2] % i}")
            ns.symlink(f"{top}/{RAW[0]}", f"{RAW[1]}/{RAW[2] % 0}")
            if half == 0:
                engine.checkpoint()
        return digest(engine.state)
    finally:
        engine.close(checkpoint=False)


@pytest.mark.parametrize("scanner", ["inline", "process"])
def test_replay_and_checkpoints_keep_names_that_are_not_utf8(tmp_path: Path, scanner: str) -> None:
    home = tmp_path / "home"
    expected = _build(home)
    # A Rename as written before its `replaced` field existed: one field short, so replay takes
    # its slow path (with a scanning process: the fields it decoded, packed again).
    options = JournalOptions(checkpoint_every=0, segment_size=SEGMENT_SIZE, replay_scanner=scanner)
    engine = Engine(OsStorage(str(home)), options)
    try:
        assert digest(engine.state) == expected
        node = engine.ns.lookup(f"/{RAW[0]}1/{RAW[2] % 2}")
        short = E.encode(E.Rename(node.id, node.parent, node.name, 1, RAW[2] % 2, 5))[:-1]
        short = bytes([short[0] - 1]) + short[1:]  # fixarray of 6, not 7
    finally:
        engine.close(checkpoint=False)
    append_record(home, E.type_code(E.Rename(0, 0, "", 0, "", 0)), short)
    engine = Engine(OsStorage(str(home)), options)
    try:
        assert engine.ns.lookup(f"/{RAW[2] % 2}").id == node.id
        names = {os.fsencode(n.name) for n in engine.ns.listdir(f"/{RAW[0]}1/{RAW[1]}")}
        assert b"na\xefve-7" in names and len(names) == 150 // 7 + 1
        link = engine.ns.lookup(f"/{RAW[0]}1/{RAW[0]}")
        assert link.ext is not None and link.ext.target == f"{RAW[1]}/{RAW[2] % 0}"
        engine.checkpoint()
        again = digest(engine.state)
    finally:
        engine.close(checkpoint=False)
    engine = Engine(OsStorage(str(home)), options)  # from that checkpoint
    try:
        assert digest(engine.state) == again
    finally:
        engine.close(checkpoint=False)

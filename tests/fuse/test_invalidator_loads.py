"""What a directory load tells the kernel (fuse/invalidator.py): nothing about the files it
makes, which the kernel has never been told of. An invalidation of one, sent later from the
invalidator's thread, would land after the kernel looked the file up and read it, and drop
the pages the pass after a cold one reads from (issue 16). A store change found afterwards is
still told."""

from __future__ import annotations

import os
import time

from engine.engine import Engine
from fuse.invalidator import KernelInvalidator
from journal import entries as E
from tests.ufs.stores import Store


def _observed(engine: Engine) -> KernelInvalidator:
    # Not started: what it would send stays queued, and ``keep_pages`` answers as at an open.
    invalidator = KernelInvalidator()
    engine.ns.gate.observers.append(invalidator.observe)
    return invalidator


def test_files_a_directory_load_makes_keep_their_pages_at_first_open(
    engine: Engine, store: Store
) -> None:
    for i in range(5):
        store.put(f"d/f{i}", os.urandom(1000))
    engine.mounts.mount("/", store.uri, store.options)
    invalidator = _observed(engine)
    files = engine.sync.listdir("/d")
    assert len(files) == 5
    assert [f.name for f in files if not invalidator.keep_pages(f.id)] == []


def test_a_store_change_found_after_a_load_still_drops_the_pages(
    engine: Engine, store: Store
) -> None:
    store.put("d/f0", b"a" * 1000)
    store.put("d/f1", b"b" * 1000)
    engine.mounts.mount("/", store.uri, store.options)
    invalidator = _observed(engine)
    first = {f.name: f.id for f in engine.sync.listdir("/d")}
    time.sleep(0.01)  # a new mtime as well as new bytes, whatever the store's clock grain
    store.put("d/f1", b"c" * 2000)
    engine.sync.sync("/d")
    assert invalidator.keep_pages(first["f0"])
    assert not invalidator.keep_pages(first["f1"])


def test_only_the_fingerprint_right_after_its_files_creation_is_passed_over() -> None:
    invalidator = KernelInvalidator()
    now = time.time_ns()
    for ino in (10, 11, 12, 13):
        invalidator.observe(E.CreateFile(ino, 1, f"f{ino}", 0o644, 0, 0, now))
        if ino == 11:  # another entry between the two: not known to be one hold of the lock
            invalidator.observe(E.SetAttr(1, now, mtime=now))
        if ino == 13:  # the new file's own attributes between: still its making
            invalidator.observe(E.SetAttr(13, now, mode=0o600))
        new_content = ino == 12  # content written over it: a change, whoever committed it
        invalidator.observe(E.UfsFingerprint(ino, "fp", 3, now, now, 0, new_content))
    assert [ino for ino in (10, 11, 12, 13) if invalidator.keep_pages(ino)] == [10, 13]

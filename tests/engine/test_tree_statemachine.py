"""The namespace against a plain model on a real directory, with checkpoints and clean restarts
but no crashes; the state from checkpoint + tail must equal a replay of the whole log.

The model is the crash test's too (tests/models/namespace_model.py), so both tests hold the
engine to one oracle; the invariants are fsck's named checks, run after every step.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from engine import openfiles
from engine.engine import Engine
from engine.inode import S_IFMT, S_IFREG
from engine.snapshot import digest
from engine.state import State
from journal.layout import list_journal
from journal.reader import read_log
from journal.storage import OsStorage
from tests.homes import remove_home
from tests.invariants import assert_fsck_clean
from tests.models import namespace_model as nm
from tests.models.housekeeping import Housekeeping

# Segments must stay for the replay from entry 1: no checkpoint ever lets one go.
KEEP_EVERYTHING = 1_000_000


def full_replay(home: str) -> State:
    """The state the whole log builds from nothing, ignoring every checkpoint."""
    storage = OsStorage(home)
    state = State()
    listing = list_journal(storage, "journal")
    # No segment at all is right for a log nothing was ever appended to.
    assert not listing.segments or listing.segments[0][0] == 1, "the log no longer starts at 1"
    result = read_log(storage, listing, 0, state.apply)
    assert result.tail is None, f"a clean log has a torn tail: {result.tail}"
    return state


class TreeMachine(Housekeeping):
    def __init__(self) -> None:
        super().__init__()
        self.home = tempfile.mkdtemp(prefix="shoal-tree-")
        self.overrides: dict[str, Any] = {}
        self.engine: Engine | None = None
        self.model: nm.Model = {"/": nm.ROOT}
        self.restarts = 0
        self.handles: list[int] = []  # inodes the frontend holds open, one entry per handle
        self.had_orphans = False

    def teardown(self) -> None:
        try:
            if self.engine is not None:
                self.engine.close()
                self._check_replay()
        finally:
            remove_home(self.home)  # and its MEM tier on /dev/shm

    def _open(self) -> Engine:
        return Engine.open_home(self.home, self.overrides)

    @property
    def ns(self) -> Any:
        assert self.engine is not None
        return self.engine.ns

    def _run(
        self, expect: nm.Model | list[nm.Model] | nm.Refused | None, call: Callable[[], Any]
    ) -> None:
        if isinstance(expect, nm.Refused):
            assert self.engine is not None
            before = digest(self.engine.state)
            with pytest.raises(expect.error):
                call()
            assert digest(self.engine.state) == before, "a refused operation changed the state"
            return
        call()
        if isinstance(expect, list):
            if expect:
                self.model = expect[-1]
        elif expect is not None:
            self.model = expect

    def _expect(self, fn: Callable[..., Any], *args: Any) -> Any:
        return nm.outcome(fn, self.model, *args)

    def _path(self, data: st.DataObject) -> str:
        paths = sorted(p for p in self.model if p != "/")
        if paths:
            if data.draw(st.booleans()):
                return data.draw(st.sampled_from(paths))
        parts = data.draw(st.lists(st.sampled_from(nm.NAMES), min_size=1, max_size=3))
        return "/" + "/".join(parts)

    @initialize(
        segment_size=st.sampled_from([256, 1024, 1 << 20]),
        checkpoint_every=st.sampled_from([0, 3, 10]),
        group_commit=st.booleans(),
    )
    def start(self, segment_size: int, checkpoint_every: int, group_commit: bool) -> None:
        # Goes through shoal.toml-style overrides, as a user's configuration would.
        self.overrides = {
            "journal.segment_size": segment_size,
            "journal.checkpoint_every": checkpoint_every,
            "journal.keep_checkpoints": KEEP_EVERYTHING,
            "journal.group_commit": group_commit,
        }
        self.engine = self._open()

    @rule(data=st.data(), parents=st.booleans())
    def mkdir(self, data: st.DataObject, parents: bool) -> None:
        path = self._path(data)
        expect = self._expect(nm.m_mkdir, path, 0o750, 2, parents)
        self._run(expect, lambda: self.ns.mkdir(path, 0o750, 2, 2, parents=parents))

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        path = self._path(data)
        self._run(
            self._expect(nm.m_create, path, 0o640, 1), lambda: self.ns.create(path, 0o640, 1, 1)
        )

    @rule(data=st.data(), length=st.integers(0, 1 << 34))
    def complete(self, data: st.DataObject, length: int) -> None:
        path = self._path(data)
        if path not in self.model:
            return
        ino = self.ns.lookup(path).id
        expect = self._expect(nm.m_complete, path, length, 1 << 22)
        self._run(expect, lambda: self.ns.complete(ino, length, 1 << 22))

    @rule(data=st.data(), link=st.sampled_from(["t", "/abs/t", ""]))
    def symlink(self, data: st.DataObject, link: str) -> None:
        path = self._path(data)
        expect = self._expect(nm.m_symlink, path, link, 0)
        self._run(expect, lambda: self.ns.symlink(path, link))

    @rule(
        data=st.data(),
        changes=st.fixed_dictionaries(
            {},
            optional={
                "mode": st.sampled_from([0o600, 0o755]),
                "uid": st.integers(0, 2),
                "size": st.sampled_from([0, 7]),
                "pinned": st.booleans(),
                "media": st.just(["ssd"]),
                "ttl_ms": st.sampled_from([-1, 1000]),
                "atime": st.integers(0, 10**18),
            },
        ),
    )
    def setattr(self, data: st.DataObject, changes: dict[str, Any]) -> None:
        path = self._path(data)
        self._run(
            self._expect(nm.m_setattr, path, changes), lambda: self.ns.setattr(path, **changes)
        )

    @rule(
        data=st.data(),
        name=st.sampled_from(["user.a", "user.a", "user.b", "trusted.t"]),
        value=st.sampled_from([None, b"", b"v", bytes(range(256))]),
    )
    def setxattr(self, data: st.DataObject, name: str, value: bytes | None) -> None:
        # Mostly an existing file or directory (the root too): blind paths seldom are.
        kept = sorted(p for p, a in self.model.items() if a.kind != "symlink")
        path = data.draw(st.sampled_from(kept)) if data.draw(st.integers(0, 3)) else None
        path = path or self._path(data)
        assert self.engine is not None
        fs = self.engine.fs
        expect = self._expect(nm.m_setxattr, path, name, value)
        self._run(expect, lambda: fs.set_xattr(self.ns.lookup(path).id, name, value))

    @rule(data=st.data(), noreplace=st.booleans())
    def rename(self, data: st.DataObject, noreplace: bool) -> None:
        src, dst = self._path(data), self._open_path(data) or self._path(data)
        expect = self._expect(nm.m_rename, src, dst, noreplace)
        orphaned = self._orphaned_by(dst, src)
        self._run(expect, lambda: self.ns.rename(src, dst, noreplace=noreplace))
        self._check_orphaned(orphaned)

    # -- files unlinked while open (engine/openfiles.py) ------------------------------------

    def _orphaned_by(self, path: str, keep: str | None = None) -> int | None:
        """The open file losing its last name if ``path`` goes (and is not ``keep``'s)."""
        node = self.ns.tree.find(self.ns.lookup(path).id) if path in self.model else None
        if node is None or keep in self.model and self.ns.lookup(keep) is node:
            return None
        last = node.mode & S_IFMT == S_IFREG and node.nlink == 1
        return node.id if last and node.id in self.handles else None

    def _open_path(self, data: st.DataObject) -> str | None:
        """Often a name of a file held open, so that unlinks and renames over them happen."""
        tree = self.ns.tree
        named = [tree.find(i) for i in sorted(set(self.handles))]
        paths = [tree.path_of(n) for n in named if n is not None]
        if not paths or not data.draw(st.booleans()):
            return None
        return data.draw(st.sampled_from(paths))

    def _check_orphaned(self, ino: int | None) -> None:
        state = self.ns.state
        if ino is not None and state.tree.find(ino) is None:
            assert ino in state.orphans, f"open inode {ino} lost its last name, not orphaned"

    @rule(data=st.data())
    def open_file(self, data: st.DataObject) -> None:
        files = sorted(p for p, a in self.model.items() if a.kind == "file")
        if files:
            ino = self.ns.lookup(data.draw(st.sampled_from(files))).id
            self.ns.open_files.opened(ino)
            self.handles.append(ino)

    @rule(data=st.data())
    def unlink_while_open(self, data: st.DataObject) -> None:
        path = "/" + data.draw(st.sampled_from(nm.NAMES))
        if path not in self.model:  # a file of its own to open, most often
            self._run(
                self._expect(nm.m_create, path, 0o640, 1), lambda: self.ns.create(path, 0o640, 1, 1)
            )
        self.open_file(data)
        if self.handles and (node := self.ns.tree.find(self.handles[-1])) is not None:
            path = self.ns.tree.path_of(node)
            orphaned = self._orphaned_by(path)
            self._run(self._expect(nm.m_delete, path, False), lambda: self.ns.delete(path))
            self._check_orphaned(orphaned)

    @rule(data=st.data())
    def close_file(self, data: st.DataObject) -> None:
        if self.handles:
            ino = self.handles.pop(data.draw(st.integers(0, len(self.handles) - 1)))
            assert self.engine is not None
            openfiles.released(self.ns, self.engine.cache, ino)
            if ino not in self.handles:
                assert ino not in self.ns.state.orphans, f"orphan {ino} outlived its handles"

    @rule(data=st.data())
    def link(self, data: st.DataObject) -> None:
        # Mostly an existing file: a link of a missing one is one refusal among many.
        files = sorted(p for p, a in self.model.items() if a.kind != "dir")
        src = data.draw(st.sampled_from(files)) if files else self._path(data)
        dirs = sorted(p for p, a in self.model.items() if a.kind == "dir")
        if data.draw(st.booleans()):
            dst = nm.join(data.draw(st.sampled_from(dirs)), data.draw(st.sampled_from(nm.NAMES)))
        else:
            dst = self._path(data)

        def call() -> None:
            assert self.engine is not None
            self.engine.fs.links.link(self.ns.lookup(src), dst)

        self._run(self._expect(nm.m_link, src, dst), call)

    @rule(data=st.data(), recursive=st.booleans())
    def delete(self, data: st.DataObject, recursive: bool) -> None:
        path = self._open_path(data) or self._path(data)
        expect = self._expect(nm.m_delete, path, recursive)
        orphaned = self._orphaned_by(path)
        self._run(expect, lambda: self.ns.delete(path, recursive=recursive))
        self._check_orphaned(orphaned)

    def reopen(self) -> Engine:
        return self._open()

    def after_clean_restart(self, before: str, final_checkpoint: bool) -> None:
        assert self.engine is not None
        self.restarts += 1
        report = self.engine.journal.report
        assert report is not None
        if final_checkpoint:
            assert report.checkpoint is not None and report.replayed == 0
        self.handles = []  # no handle outlives the process: start-up released the orphans
        assert not self.engine.state.orphans, "an orphan outlived a restart"
        if not self.had_orphans:
            assert digest(self.engine.state) == before, "a clean restart changed the state"
        self._check_replay()

    def _check_replay(self) -> None:
        replayed = full_replay(self.home)
        assert_fsck_clean(replayed)
        if self.engine is not None:
            assert digest(replayed) == digest(self.engine.state), "checkpoint + tail != replay"
        assert nm.dump(replayed) == self.model

    @invariant()
    def agrees_with_the_model(self) -> None:
        if self.engine is not None:
            assert_fsck_clean(self.engine)
            assert nm.dump(self.engine.state) == self.model
            orphans = self.engine.state.orphans
            assert set(orphans) <= set(self.handles), "an orphan no handle holds"
            self.had_orphans = bool(orphans)


TreeMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTree = TreeMachine.TestCase

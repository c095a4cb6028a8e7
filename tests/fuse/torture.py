"""The model and the checks of the kill -9 torture test (tests/fuse/test_torture.py).

Each writer (tests/fuse/torture_writer.py) works in one directory of the mount, on one store
and one write type, and logs every operation with the states it may leave its names in and
which of them its returned calls made durable. After a kill -9 and a new mount, a directory
must hold exactly what its log says: the state after every finished operation, and for the one
operation in flight, one of the states it may leave (the last acknowledged one or a later one;
before any acknowledgement, the state before it too). Then its store must agree, as the write
type promises (docs/cache.md).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.ufs.stores import Store

State = str | None  # None: no file; "SHA-256:size" of its bytes; "~" + it: never committed
Files = dict[str, str]  # name -> state, for the names that exist
UNCOMMITTED = "~"
TMP_PREFIX = ".shoal-tmp-"  # a local store's upload in progress (docs/ufs.md)
# What a call answers once the daemon is gone: the connection is aborted under the requests in
# flight, and refused to later ones.
DAEMON_GONE = {errno.ENOTCONN, errno.ECONNABORTED}
UFS_AT_CLOSE = {"THROUGH", "CACHE_THROUGH"}


def digest(data: bytes) -> str:
    """How a content is named (tests/fuse/torture_writer.py logs the same)."""
    return f"{hashlib.sha256(data).hexdigest()}:{len(data)}"


def content(state: State) -> str | None:
    return state.removeprefix(UNCOMMITTED) if state is not None else None


@dataclass
class Totals:
    rounds: int = 0
    acknowledged: int = 0  # operations whose every call returned
    in_flight: int = 0  # operations cut by a kill
    files_checked: int = 0  # files compared byte for byte (mount and store)
    deletions_checked: int = 0  # deleted names found absent (mount and store)
    lost: int = 0
    resurrected: int = 0
    other: int = 0  # strays, wrong store copies, failed calls, fsck

    def line(self) -> str:
        return (
            f"{self.rounds} rounds, {self.acknowledged} operations acknowledged"
            f" ({self.in_flight} more cut by a kill), {self.files_checked} files and"
            f" {self.deletions_checked} deletions checked: {self.lost} lost,"
            f" {self.resurrected} resurrected, {self.other} other problems"
        )


@dataclass
class Round:
    """What one directory's writer did in one round, read back from its log."""

    base: Files | None = None
    done: list[dict[str, State]] = field(default_factory=list)  # final stage of each
    cut: tuple[str, list[dict[str, State]], int] | None = None  # kind, stages, last reached
    error: dict[str, object] | None = None


def read_log(log: Path) -> Round:
    out = Round()
    ops: dict[int, tuple[str, list[dict[str, State]]]] = {}
    reached: dict[int, int] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if "base" in record:
            out.base = record["base"]
        elif "op" in record:
            ops[record["n"]] = (record["op"], record["stages"])
        elif "at" in record:
            reached[record["n"]] = record["at"]
        elif "error" in record:
            out.error = record
    for n in sorted(ops):
        kind, stages = ops[n]
        last = reached.get(n, -1)
        if last == len(stages) - 1:
            out.done.append(stages[-1])
        else:
            assert out.cut is None, f"{log}: two operations unfinished"
            out.cut = (kind, stages, last)
    return out


def overlay(files: Files, change: dict[str, State]) -> Files:
    out = dict(files)
    for name, state in change.items():
        if state is None:
            out.pop(name, None)
        else:
            out[name] = state
    return out


@dataclass
class WorkDir:
    """One writer's directory: where it is in the mount and in its store, its write type, and
    the model of its names."""

    label: str  # e.g. "s3/MUST_CACHE"
    mount_path: Path
    store: Store
    key_prefix: str  # the directory's path in the store, ending with /
    write_type: str
    s3: bool
    files: Files = field(default_factory=dict)
    ever: set[str] = field(default_factory=set)  # names that existed at some time
    problems: list[str] = field(default_factory=list)

    def candidates(self, rnd: Round) -> list[Files]:
        """Every state the directory may be found in after the round's kill."""
        files = self.files
        for change in rnd.done:
            files = overlay(files, change)
            self.ever.update(change)
        if rnd.cut is None:
            return [files]
        kind, stages, last = rnd.cut
        for change in stages:
            self.ever.update(change)
        out = [files] if last < 0 else []
        out += [overlay(files, change) for change in stages[max(last, 0) :]]
        if kind == "rename" and self.s3:
            # An object store renames by copy, then delete (docs/ufs.md: not atomic): a kill
            # between the two leaves the object under both names, and a listing finds both.
            src = next(n for n, s in stages[0].items() if s is None)
            dst = next(n for n, s in stages[0].items() if s is not None)
            if src in files and not files[src].startswith(UNCOMMITTED):
                out.append({**files, dst: files[src]})
        return out


def observe(path: Path) -> dict[str, str]:
    """The directory as the mount shows it: name -> its content's digest (or "!errno")."""
    found: dict[str, str] = {}
    for name in sorted(os.listdir(path)):
        try:
            found[name] = digest((path / name).read_bytes())
        except OSError as exc:
            found[name] = f"!{errno.errorcode.get(exc.errno or 0, exc.errno)}"
    return found


def check_mount(wd: WorkDir, rnd: Round, totals: Totals) -> None:
    """The mount against the log; the model becomes what was found."""
    if rnd.base is not None and rnd.base != {n: s for n, s in wd.files.items()}:
        wd.problems.append(f"the writer found {rnd.base} at its start, the model {wd.files}")
        totals.other += 1
    if rnd.error is not None and rnd.error["error"] not in DAEMON_GONE:
        wd.problems.append(f"a call failed while the daemon served it: {rnd.error}")
        totals.other += 1
    totals.acknowledged += len(rnd.done)
    totals.in_flight += rnd.cut is not None
    options = wd.candidates(rnd)
    found = observe(wd.mount_path)
    matches = [c for c in options if {n: content(s) for n, s in c.items()} == found]
    if matches:
        # Alike but for "~": a create whose content was empty; its store copy is not checked.
        uncommitted = (c for c in matches if any(s.startswith(UNCOMMITTED) for s in c.values()))
        wd.files = next(uncommitted, matches[0])
    else:
        nearest = min(options, key=lambda c: len(differences(c, found)))
        for name, want, got in differences(nearest, found):
            wd.problems.append(_describe(wd, name, want, got, "in the mount", totals))
        if rnd.cut is not None:
            kind, stages, last = rnd.cut
            shown = [{n: _short(s) for n, s in stage.items()} for stage in stages]
            wd.problems.append(f"  (the kill cut a {kind}: stages {shown}, acknowledged {last})")
        wd.files = {n: s for n, s in found.items() if not s.startswith("!")}
    totals.files_checked += len(found)
    totals.deletions_checked += len(wd.ever - set(found))


def differences(model: Files, found: dict[str, str]) -> list[tuple[str, State, str | None]]:
    out = []
    for name in sorted(set(model) | set(found)):
        want, got = content(model.get(name)), found.get(name)
        if want != got:
            out.append((name, model.get(name), got))
    return out


def _describe(wd: WorkDir, name: str, want: State, got: str | None, where: str,
              totals: Totals) -> str:  # fmt: skip
    if want is not None and got is None:
        totals.lost += 1
        return f"LOST {wd.label}/{name} {where}: acknowledged {_short(want)}, found no file"
    if want is None and got is not None:
        if name in wd.ever:
            totals.resurrected += 1
            return f"RESURRECTED {wd.label}/{name} {where}: deleted, found {_short(got)}"
        totals.other += 1
        return f"STRAY {wd.label}/{name} {where}: never written, found {_short(got)}"
    totals.lost += 1
    return f"LOST {wd.label}/{name} {where}: acknowledged {_short(want)}, found {_short(got)}"


def _short(state: str | None) -> str:
    """A content as "~sha256-prefix:size", for messages."""
    if state is None or state.startswith("!"):
        return str(state)
    sha, _, size = state.rpartition(":")
    return f"{sha[:13]}:{size}"


def store_files(wd: WorkDir) -> dict[str, bytes | None]:
    """The files directly in the directory on its store (bytes read later, by need)."""
    prefix = wd.key_prefix
    names = [k[len(prefix) :] for k in wd.store.keys() if k.startswith(prefix)]
    return {n: None for n in names if n and "/" not in n}


def check_store(wd: WorkDir, totals: Totals, *, final: bool) -> None:
    """The store against the model, as the write type promises: a THROUGH or CACHE_THROUGH
    file is there at close (so are ASYNC_THROUGH files after the final `shoal fs persist`);
    an ASYNC_THROUGH file may be pending, so only its name is checked before; a MUST_CACHE
    file is never there. No deleted file is there. Temporary upload files are allowed only
    while the daemon runs (it may be uploading); after `shoal umount`, none."""
    names = store_files(wd)
    by_content = wd.write_type in UFS_AT_CLOSE or (final and wd.write_type == "ASYNC_THROUGH")
    for name in sorted(set(names) | set(wd.files) | wd.ever):
        state = wd.files.get(name)
        if name.startswith(TMP_PREFIX) and not final:
            continue
        if name in names and state is not None and wd.write_type == "MUST_CACHE":
            wd.problems.append(f"STRAY {wd.label}/{name} in the store: MUST_CACHE is never there")
            totals.other += 1
        elif name in names and state is None:
            there = digest(wd.store.get(wd.key_prefix + name))
            wd.problems.append(_describe(wd, name, None, there, "in the store", totals))
        elif state is None:
            totals.deletions_checked += 1
        elif by_content and not state.startswith(UNCOMMITTED):
            got = digest(wd.store.get(wd.key_prefix + name)) if name in names else None
            if got != state:
                wd.problems.append(_describe(wd, name, state, got, "in the store", totals))
            totals.files_checked += 1


def model_file(wd: WorkDir, at: Path) -> Path:
    """The model written where the writer reads it at its start."""
    at.write_text(json.dumps(wd.files))
    return at


def report(dirs: Iterable[WorkDir]) -> list[str]:
    return [p for wd in dirs for p in wd.problems]

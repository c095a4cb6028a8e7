"""kill -9 torture: one real `shoal mount` serving an S3 store (moto's server over HTTP) at its
root and a local directory mounted below it, eight writer processes (one per store and write
type) creating, writing, fsyncing, renaming, appending, rewriting, truncating and unlinking,
and the daemon killed with SIGKILL at a random moment, round after round. After each kill the
home is mounted again and every directory must hold what its writer's acknowledged calls left
(tests/fuse/torture.py), nothing deleted may be back in the mount or in the store, and
`shoal fsck` (after every second round, and at the end) must find the home clean.

SHOAL_TORTURE_ROUNDS (default 20) sets the rounds and SHOAL_TORTURE_SEED repeats a run; without
it a fresh seed is drawn and printed; SHOAL_TORTURE_TYPES narrows it to some write types
(docs/operations.md, "The kill -9 torture test").
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.cli.shoal_cli import env, shoal
from tests.fuse.mounting import Mounted
from tests.fuse.torture import (
    Round,
    Totals,
    WorkDir,
    check_mount,
    check_store,
    model_file,
    read_log,
    report,
)
from tests.ufs.stores import LocalStore, S3Store

WRITER = Path(__file__).with_name("torture_writer.py")
ALL_TYPES = ("THROUGH", "CACHE_THROUGH", "MUST_CACHE", "ASYNC_THROUGH")
# SHOAL_TORTURE_TYPES=THROUGH,MUST_CACHE narrows a run to some write types, to tell defects apart.
WRITE_TYPES = os.environ.get("SHOAL_TORTURE_TYPES", ",".join(ALL_TYPES)).upper().split(",")
MOUNT_TYPE = "ASYNC_THROUGH"  # the mount's -o write_type; the others are set per path
BLOCK_SIZE = 256 << 10  # files of a few blocks: rewrites of a block, partial last blocks
KILL_AFTER = (0.2, 2.5)  # seconds of work before the kill, drawn per round
# fsck needs the home to itself: `shoal umount`, fsck and a new mount take about 4 s. After
# every second round (and at the end) 20 rounds take about 2 minutes. What a kill breaks in the
# state stays broken until the next fsck: a start repairs only the cache's leftovers.
FSCK_EVERY = 2
T = TypeVar("T")

CREDENTIALS_ENV = {**env(), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


class Torture:
    def __init__(self, seed: int, tmp: Path, m: Mounted, dirs: list[WorkDir]) -> None:
        self.seed, self.rng, self.tmp, self.m, self.dirs = seed, random.Random(seed), tmp, m, dirs
        self.totals = Totals()

    def fail_if_problems(self, where: str) -> None:
        problems = report(self.dirs)
        assert not problems, self.context(where) + "\n" + "\n".join(problems)

    def context(self, where: str) -> str:
        return f"seed {self.seed} (SHOAL_TORTURE_SEED={self.seed}), {where}: {self.totals.line()}"

    def step(self, where: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """A step that must succeed; its failure is reported with the seed and the totals."""
        try:
            return fn(*args, **kwargs)
        except AssertionError as exc:
            raise AssertionError(f"{self.context(where)}\n{exc}") from None

    def work_and_kill(self, r: int) -> list[Round]:
        """Starts a writer per directory, kills the daemon at a random moment, waits for the
        writers to notice; returns what each one logged."""
        writers = []
        for i, wd in enumerate(self.dirs):
            model = model_file(wd, self.tmp / f"model-{i}.json")
            log, err = self.tmp / f"log-{r:03d}-{i}.jsonl", self.tmp / f"err-{r:03d}-{i}.txt"
            with open(err, "w") as stderr:
                argv = [sys.executable, str(WRITER), str(wd.mount_path), str(model), str(log),
                        str(self.rng.randrange(1 << 32))]  # fmt: skip
                writers.append((subprocess.Popen(argv, stderr=stderr), log, err))
        time.sleep(self.rng.uniform(*KILL_AFTER))
        self.m.kill9()
        for proc, _log, _err in writers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a call that never returned: no acknowledgement
                proc.kill()
                proc.wait()
        for _proc, _log, err in writers:
            assert not err.read_text(), self.context(f"round {r}, a writer broke: {err}")
        return [read_log(log) if log.exists() else Round() for _proc, log, _err in writers]

    def check(self, rounds: list[Round], r: int) -> None:
        for wd, rnd in zip(self.dirs, rounds, strict=True):
            check_mount(wd, rnd, self.totals)
        self.fail_if_problems(f"round {r}, the mount after kill -9")
        for wd in self.dirs:
            check_store(wd, self.totals, final=False)
        self.fail_if_problems(f"round {r}, the stores after kill -9")

    def fsck(self, where: str) -> None:
        out = shoal("fsck", home=self.m.home, expect=None)
        clean = out.returncode == 0 and out.stdout.rstrip().endswith("clean")
        self.totals.other += not clean
        assert clean, f"{self.context(where)}\nshoal fsck:\n{out.stdout}{out.stderr}"

    def round(self, r: int) -> None:
        rounds = self.work_and_kill(r)
        self.step(f"round {r}, mounting after kill -9", self.m.mount)
        self.check(rounds, r)
        self.totals.rounds += 1
        if r % FSCK_EVERY == FSCK_EVERY - 1:
            self.step(f"round {r}, shoal umount", self.m.umount)
            self.fsck(f"round {r}, after kill -9 and a new mount")
            self.step(f"round {r}, mounting again", self.m.mount)

    def finish(self) -> None:
        """A clean stop, then every pending upload done: the stores hold exactly the files
        the mount showed (MUST_CACHE ones excepted), and no temporary file."""
        self.step("the final shoal umount", self.m.umount)
        self.fsck("after the final shoal umount")
        for wd in self.dirs:
            if wd.write_type == "ASYNC_THROUGH":
                path = "/" + str(wd.mount_path.relative_to(self.m.path))
                # Offline: the secret the mount was given lives only in the daemon, so this
                # command gets it from its environment (docs/configuration.md, "Credentials").
                self.step(f"persisting {path}", shoal, "fs", "persist", "-R", path,
                          home=self.m.home, env=CREDENTIALS_ENV)  # fmt: skip
        for wd in self.dirs:
            check_store(wd, self.totals, final=True)
        self.fail_if_problems("the stores after the final persist")


def work_dirs(m: Mounted, s3: S3Store, local: LocalStore) -> list[WorkDir]:
    """A directory per store and write type; the local store mounted at /local."""
    (m.path / "local").mkdir()
    shoal("fs", "mount", "/local", local.uri, home=m.home)
    dirs = []
    for store, top in ((s3, m.path), (local, m.path / "local")):
        for kind in WRITE_TYPES:
            name = f"{'s3' if store is s3 else 'local'}-{kind}"
            (top / name).mkdir()
            wd = WorkDir(name, top / name, store, name + "/", kind, store is s3)
            if kind != MOUNT_TYPE:
                path = "/" + str(wd.mount_path.relative_to(m.path))
                shoal("fs", "settype", path, "--write", kind, home=m.home)
            dirs.append(wd)
    return dirs


def seed_of_run() -> int:
    given = os.environ.get("SHOAL_TORTURE_SEED")
    return int(given) if given else random.SystemRandom().randrange(1 << 32)


def test_kill9_torture(s3_server: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                       ) -> None:  # fmt: skip
    seed, rounds = seed_of_run(), int(os.environ.get("SHOAL_TORTURE_ROUNDS", "20"))
    assert set(WRITE_TYPES) <= set(ALL_TYPES), f"SHOAL_TORTURE_TYPES: one of {ALL_TYPES}"
    with capsys.disabled():
        print(f"\ntorture: seed {seed} (SHOAL_TORTURE_SEED={seed} repeats it), {rounds} rounds")
    s3, local = S3Store(s3_server), LocalStore(tmp_path / "ufs")
    options = {**s3.options, "write_type": MOUNT_TYPE, "block_size": str(BLOCK_SIZE)}
    m = Mounted(tmp_path / "home", s3.uri, tmp_path / "mnt", options)
    try:
        m.mount()
        torture = Torture(seed, tmp_path, m, work_dirs(m, s3, local))
        for r in range(rounds):
            torture.round(r)
        torture.finish()
    finally:
        m.teardown()
    assert torture.totals.acknowledged > 0, "the writers never got an operation done"
    with capsys.disabled():
        print(f"torture: {torture.totals.line()}")

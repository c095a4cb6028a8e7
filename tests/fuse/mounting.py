"""Real Shoal mounts for tests: `shoal mount` in its own daemon process, always torn down."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fuse.clientwire import run_socket
from fuse.mountinfo import alive, daemon_pid, served
from tests.cli.shoal_cli import shoal
from tests.homes import track
from tests.ufs.stores import Store

# The mounts the running test made: a failing test's report shows their daemons' logs
# (tests/conftest.py), which its temporary directory does not keep for long.
made: list[Mounted] = []
TAIL_LINES = 80


class Mounted:
    """A live mount of ``uri`` at ``path``, served by a daemon for ``home``."""

    def __init__(
        self, home: Path, uri: str, path: Path, options: dict[str, str] | None = None
    ) -> None:
        self.home, self.uri, self.path = track(home), uri, path  # its MEM tier goes after the test
        self.options = dict(options or {})
        path.mkdir(parents=True, exist_ok=True)
        made.append(self)

    def log_tails(self, lines: int = TAIL_LINES) -> list[tuple[str, str]]:
        """(file, its last ``lines`` lines) of its daemon's log, and of its stderr (where a
        crash's traceback goes): those that have any."""
        from fuse.daemon import LOG_DIR, LOG_FILE  # only for a failing test: no FUSE import

        tails = []
        for name in (LOG_FILE, "daemon.stderr"):
            try:
                text = (self.home / LOG_DIR / name).read_text(errors="replace")
            except OSError:
                continue
            if text:
                tails.append((name, "\n".join(text.splitlines()[-lines:])))
        return tails

    def mount(self, *extra: str) -> None:
        args = ["mount", self.uri, str(self.path)]
        for key, value in self.options.items():
            args += ["-o", f"{key}={value}"]
        for item in extra:
            args += ["-o", item]
        shoal(*args, home=self.home)

    def pid(self) -> int | None:
        """Its daemon's pid; None once that pid is another process's (never killed here)."""
        return daemon_pid(str(self.home))

    def umount(self) -> None:
        shoal("umount", str(self.path))

    def kill9(self) -> None:
        pid = self.pid()
        assert pid is not None, "no daemon to kill"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def teardown(self) -> None:
        """Whatever state the test left: unmounted, daemon gone."""
        try:
            if served(str(self.path)) is None:
                return
            done = shoal("umount", str(self.path), expect=None)
            if done.returncode != 0:
                pid = self.pid()
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)
        finally:
            pid = self.pid()
            if pid is None or not alive(pid):  # a killed daemon leaves its client socket
                Path(run_socket(str(self.home))).unlink(missing_ok=True)


@contextmanager
def mounted(store: Store, base: Path, *extra: str) -> Iterator[Mounted]:
    """``store`` mounted at ``base``/mnt with its home in ``base``/home, torn down after."""
    m = Mounted(base / "home", store.uri, base / "mnt", store.options)
    m.store = store  # type: ignore[attr-defined]
    m.mount(*extra)
    try:
        yield m
    finally:
        m.teardown()


def daemon_logs() -> list[tuple[str, str]]:
    """(title, tail) of the daemon logs of each mount the running test made."""
    return [(f"{name} of the daemon of {m.path} (last lines)", tail)
            for m in made for name, tail in m.log_tails()]  # fmt: skip

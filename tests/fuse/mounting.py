"""Real Shoal mounts for tests: `shoal mount` in its own daemon process, always torn down."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.shoal_cli import shoal


class Mounted:
    """A live mount of ``uri`` at ``path``, served by a daemon for ``home``."""

    def __init__(
        self, home: Path, uri: str, path: Path, options: dict[str, str] | None = None
    ) -> None:
        self.home, self.uri, self.path = home, uri, path
        self.options = dict(options or {})
        path.mkdir(parents=True, exist_ok=True)

    def mount(self, *extra: str) -> None:
        args = ["mount", self.uri, str(self.path)]
        for key, value in self.options.items():
            args += ["-o", f"{key}={value}"]
        for item in extra:
            args += ["-o", item]
        shoal(*args, home=self.home)

    def pid(self) -> int | None:
        try:
            return int((self.home / "daemon.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def umount(self) -> None:
        shoal("umount", str(self.path))

    def kill9(self) -> None:
        pid = self.pid()
        assert pid is not None, "no daemon to kill"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def teardown(self) -> None:
        """Whatever state the test left: unmounted, daemon gone."""
        try:
            os.stat(self.path)
        except OSError:
            pass
        if os.path.ismount(self.path) or _stale(self.path):
            done = shoal("umount", str(self.path), expect=None)
            if done.returncode != 0:
                pid = self.pid()
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)


def _stale(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == 107  # ENOTCONN: a dead daemon's mount
    return False

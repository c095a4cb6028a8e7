"""tar's order through an open descriptor — write, utimens, chown, chmod, close — with each
write type: the time set before the close is the file's after it (in the mount, in the store,
after a remount), and a write after the utimens moves it again (the commit at the close then
stamps its own). The utimens no longer commits the content; the close carries its time."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore

PAST = 1_400_000_000_123_456_789
DATA = os.urandom(3000)


def _tar_like(path: Path, data: bytes, then_write: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.utime(fd, ns=(PAST, PAST))
        if then_write:
            os.write(fd, b"more")
        os.fchown(fd, 1234, 5678)
        os.fchmod(fd, 0o640)
    finally:
        os.close(fd)


@pytest.mark.parametrize("write_type", ["ASYNC_THROUGH", "CACHE_THROUGH", "THROUGH"])
def test_a_time_set_before_the_close_is_kept_by_it(tmp_path: Path, write_type: str) -> None:
    store = LocalStore(tmp_path / "ufs")
    with mounted(store, tmp_path, f"write_type={write_type}") as m:
        before = time.time_ns()
        _tar_like(m.path / "kept", DATA, then_write=False)
        _tar_like(m.path / "moved", DATA, then_write=True)
        st = os.stat(m.path / "kept")
        assert (st.st_mtime_ns, st.st_uid, st.st_gid) == (PAST, 1234, 5678)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert (m.path / "kept").read_bytes() == DATA
        assert os.stat(m.path / "moved").st_mtime_ns >= before
        assert (m.path / "moved").read_bytes() == DATA + b"more"
        m.umount()  # an ASYNC_THROUGH upload is done by then
        for name, content in (("kept", DATA), ("moved", DATA + b"more")):
            in_store = os.stat(store.root / name)
            assert (store.root / name).read_bytes() == content
            assert (in_store.st_uid, in_store.st_gid) == (1234, 5678)
            assert stat.S_IMODE(in_store.st_mode) == 0o640
        assert os.stat(store.root / "kept").st_mtime_ns == PAST
        assert os.stat(store.root / "moved").st_mtime_ns >= before
        m.mount()
        st = os.stat(m.path / "kept")
        assert (st.st_mtime_ns, st.st_uid, stat.S_IMODE(st.st_mode)) == (PAST, 1234, 0o640)
        assert (m.path / "kept").read_bytes() == DATA

"""fuse/boundary.py: what a handler's exception is answered with, and what the daemon's log keeps
of an errno no engine rule chose (the kernel's caller sees only the number)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pyfuse3
import pytest
import trio

from engine.errors import NotFound
from engine.mounts import ufs_errors
from fuse.boundary import answers_errno
from ufs.local import LocalUnderFS


def _answer(handler: object, *args: object) -> int:
    """The errno the kernel would get from ``handler(*args)``."""
    with pytest.raises(pyfuse3.FUSEError) as info:
        trio.run(handler, *args)  # type: ignore[arg-type]
    return info.value.errno


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fuse.boundary" and r.levelno >= logging.WARNING]


def test_an_os_error_escaping_a_handler_is_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @answers_errno
    async def flush(fh: int) -> None:
        os.pread(fh, 1, -1)  # what a descriptor's misuse looks like: EINVAL from the kernel

    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with caplog.at_level(logging.DEBUG, logger="fuse.boundary"):
            assert _answer(flush, fd) == errno.EINVAL  # its errno passes through, as before
    finally:
        os.close(fd)
    (record,) = _warnings(caplog)
    assert record.getMessage().startswith("flush answered EINVAL, unexpectedly")
    assert record.exc_info is not None and "os.pread(fh, 1, -1)" in caplog.text


def test_a_store_failure_of_no_known_kind_is_logged_with_the_stores_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "ufs").mkdir()
    store = LocalUnderFS(str(tmp_path / "ufs"))
    staged = store.stage("f")
    assert staged is not None
    # Closed under the commit that lands it: EBADF, or EINVAL once the number is reused (trio's
    # own descriptors take it here); no UfsError subclass names either.
    os.close(staged.fd)

    @answers_errno
    async def flush(fh: int) -> None:
        with ufs_errors():
            store.land(staged, "f")

    with caplog.at_level(logging.DEBUG, logger="fuse.boundary"):
        assert _answer(flush, 1) == errno.EINVAL  # what close(2) got for it in the CI flake
    (record,) = _warnings(caplog)
    assert record.getMessage().startswith("flush answered EINVAL, unexpectedly")
    # The store's error and the OS error under it, with the line that failed.
    assert "ufs.errors.UfsError" in caplog.text and "OSError: [Errno" in caplog.text
    assert "os.fsync(staged.fd)" in caplog.text, caplog.text


def test_an_engine_decision_is_not_logged_as_unexpected(caplog: pytest.LogCaptureFixture) -> None:
    @answers_errno
    async def lookup(ino: int) -> None:
        raise NotFound(f"inode {ino} has no such child")

    with caplog.at_level(logging.DEBUG, logger="fuse.boundary"):
        assert _answer(lookup, 1) == errno.ENOENT
    assert _warnings(caplog) == []

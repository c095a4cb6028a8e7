"""A storage served over a socket (journal/remote_storage.py) behaves as the storage itself:
same files, same errors (an OSError with its errno and file name), handles kept per client."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from journal.remote_storage import RemoteStorage, StorageServer
from journal.storage import OsStorage, write_durably


def test_every_call_reaches_the_served_storage_and_errors_come_back_as_oserror(
    tmp_path: Path,
) -> None:
    served = OsStorage(str(tmp_path))
    server = StorageServer(served)
    remote = RemoteStorage(server.child_fd)  # this process plays the child
    try:
        remote.makedirs("j/k")
        write_durably(remote, "j/seen", b"12\n")
        handle = remote.open_write("j/log", append=True, sync_writes=True)
        handle.write(b"abc")
        handle.fsync()
        handle.close()
        update = remote.open_update("j/log")
        update.write_at(b"Z", 1)
        update.truncate(2)
        update.fsync()
        update.close()
        remote.rename("j/log", "j/k/log")
        remote.fsync_dir("j/k")
        assert (tmp_path / "j/k/log").read_bytes() == b"aZ"
        assert remote.listdir("j") == ["k", "seen"]
        assert remote.read("j/seen") == b"12\n" and remote.size("j/k/log") == 2
        assert remote.exists("j/k/log") and not remote.exists("j/log")
        with pytest.raises(FileNotFoundError) as lost:
            remote.unlink("j/missing")
        assert lost.value.errno == errno.ENOENT and "j/missing" in str(lost.value.filename)
        with pytest.raises(OSError) as bad:
            remote.call("chmod", "j")
        assert bad.value.errno == errno.EIO and "unknown storage request" in str(bad.value)
    finally:
        remote.close()
        server.close()

"""A store's failures as a program on the mount sees them: a full local store is ENOSPC at the
close that writes the file, a store that never answers is EIO once the read deadline passes,
and a user's own `.shoal-tmp-*` file is an ordinary file."""

from __future__ import annotations

import errno
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from tests.fuse.mounting import mounted
from tests.homes import write_config
from tests.ufs.contract import MiB
from tests.ufs.stores import LocalStore, S3Store, small_filesystem


def test_a_users_shoal_tmp_file_is_listed_and_readable(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    store.put(".shoal-tmp-foo", b"a user's own file")
    with mounted(store, tmp_path) as m:
        assert os.listdir(m.path) == [".shoal-tmp-foo"]
        assert (m.path / ".shoal-tmp-foo").read_bytes() == b"a user's own file"


def test_a_full_local_store_answers_enospc_at_close(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small") as small:
        store = LocalStore(small / "ufs")
        with mounted(store, tmp_path) as m:
            with pytest.raises(OSError) as info:
                with open(m.path / "big.bin", "wb") as f:
                    f.write(os.urandom(4 * MiB))
            assert info.value.errno == errno.ENOSPC, info.value
            # Nothing of the write left in the store but, maybe, the empty spool made ahead
            # for the next new file (engine/spools.py, SpareSpools).
            temps = [p for p in (small / "ufs").iterdir() if p.name.startswith(".shoal-tmp-")]
            assert len(temps) <= 1 and not any(p.stat().st_size for p in temps), temps
            # A new file written through the store is spooled in it (engine/spools.py): the
            # write answers ENOSPC, and what it wrote before stays, as on a local disk; the
            # mount and the store agree on it, and once it goes, the store takes what fits.
            on_mount = (m.path / "big.bin").stat().st_size if (m.path / "big.bin").exists() else 0
            assert on_mount == (len(store.get("big.bin")) if "big.bin" in store.keys() else 0)
            (m.path / "big.bin").unlink(missing_ok=True)
            (m.path / "small.bin").write_bytes(b"fits")  # the store still takes what fits
            assert store.get("small.bin") == b"fits"


def test_a_store_that_never_answers_answers_eio(
    s3_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    store = S3Store(s3_server)
    data = os.urandom(300_000)
    store.put("data.bin", data)
    # The connector alone would wait max_attempts (5) x read_timeout_s (5 s) for a store that
    # holds every request, and the kernel asks again: longer than this test's own limit below.
    store.options.update(endpoint=proxy.endpoint, read_timeout_s="5")
    (tmp_path / "home").mkdir()
    write_config(tmp_path / "home", "[ufs]", "read_deadline_s = 1")
    with mounted(store, tmp_path) as m:
        assert (m.path / "data.bin").stat().st_size == len(data)
        proxy.add(Fault("delay", -1, seconds=3600, method="GET"))  # held, never answered
        with open(m.path / "data.bin", "rb") as f, ThreadPoolExecutor(1) as pool:
            error = pool.submit(os.pread, f.fileno(), 4096, 0).exception(timeout=20)
        assert isinstance(error, OSError) and error.errno == errno.EIO, error
        proxy.clear()  # the store answers again
        # Once the held attempt has timed out (read_timeout_s), the next one is answered.
        limit = time.monotonic() + 60  # the test's own limit
        while True:
            try:
                assert (m.path / "data.bin").read_bytes() == data
                break
            except OSError as exc:
                if exc.errno != errno.EIO or time.monotonic() > limit:
                    raise
                time.sleep(0.2)


def test_a_store_failure_of_no_known_kind_at_close_is_logged_with_its_cause(
    s3_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    store = S3Store(s3_server)
    store.options.update(endpoint=proxy.endpoint)
    with mounted(store, tmp_path, "write_type=THROUGH") as m:
        # A reply no rule of the connector knows (400 without an S3 error code) to the upload
        # that close(2) waits for: the caller gets an errno and nothing else.
        proxy.add(Fault("status", 1, status=400, method="PUT", query="odd.bin"))
        with pytest.raises(OSError) as info:
            with open(m.path / "odd.bin", "wb") as f:
                f.write(b"x" * 1000)
        assert info.value.errno is not None
        answered = errno.errorcode[info.value.errno]
        ((_name, log),) = [t for t in m.log_tails(lines=200) if t[0] == "shoal.log"]
        # The daemon's log says which request answered it, with the store's failure and where.
        assert f"WARNING fuse.boundary: flush answered {answered}, unexpectedly" in log, log
        assert "Traceback" in log and "400" in log and "odd.bin" in log, log

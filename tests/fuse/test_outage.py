"""A real mount over S3 (moto's server over HTTP) restarted while the store is down: what was
listed and cached before is served through the kernel, a file can be created with MUST_CACHE,
and a directory never listed answers EIO."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import S3Store


def test_a_restarted_mount_serves_what_it_loaded_while_s3_is_down(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    a, b = os.urandom(300_000), os.urandom(5_000)
    store = S3Store(s3_server)  # the test's own puts go straight to the server
    store.put("train/a.bin", a)
    store.put("train/b.bin", b)
    store.put("val/c.bin", b"c" * 10)
    # The mount goes through the proxy; it looks at the store on every access (interval 0).
    store.options.update(
        endpoint=proxy.endpoint, max_attempts="2", connect_timeout_s="1", sync_interval="0"
    )
    with mounted(store, tmp_path, "write_type=MUST_CACHE") as m:
        assert sorted(os.listdir(m.path)) == ["train", "val"]
        assert sorted(os.listdir(m.path / "train")) == ["a.bin", "b.bin"]
        assert (m.path / "train" / "a.bin").read_bytes() == a  # cached as it is read
        assert (m.path / "train" / "b.bin").read_bytes() == b
        m.umount()  # a restart: the daemon goes, with everything it knew in memory

        proxy.add(Fault("drop", -1))  # the store goes down: every request dropped
        m.mount("write_type=MUST_CACHE")
        assert sorted(os.listdir(m.path)) == ["train", "val"]
        assert sorted(os.listdir(m.path / "train")) == ["a.bin", "b.bin"]
        assert (m.path / "train" / "a.bin").read_bytes() == a
        assert (m.path / "train" / "b.bin").read_bytes() == b
        (m.path / "train" / "new.txt").write_bytes(b"written during the outage")
        assert (m.path / "train" / "new.txt").read_bytes() == b"written during the outage"
        assert sorted(os.listdir(m.path / "train")) == ["a.bin", "b.bin", "new.txt"]
        with pytest.raises(OSError) as never_listed:
            os.listdir(m.path / "val")
        assert never_listed.value.errno == errno.EIO
        m.umount()
    report = shoal("fsck", home=m.home)
    assert "clean" in report.stdout

"""Directory prefetch through a real mount: a read-only dataset's directory is fetched after a
reader's first file of it, and an unmount while the prefetch is under way stops it cleanly."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import S3Server
from fuse.mountinfo import alive, served
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import LocalStore, S3Store


def test_a_read_only_mount_prefetches_a_directory_after_its_first_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    data = {f"train/c0/img{i:02d}.jpg": os.urandom(30_000 + i) for i in range(30)}
    data.update({f"train/c1/img{i:02d}.jpg": os.urandom(30_000) for i in range(5)})
    for key, value in data.items():
        store.put(key, value)
    # A local store prefetches only when asked (engine/prefetch.py's ``prefetches``).
    with mounted(store, tmp_path, "ro", "prefetch=true") as m:
        first = m.path / "train" / "c0" / "img00.jpg"
        assert first.read_bytes() == data["train/c0/img00.jpg"]
        report = json.loads(shoal("report", "--json", "--idle", home=m.home).stdout)
        c0 = sum(len(v) for k, v in data.items() if k.startswith("train/c0/"))
        assert report["ufs_bytes_read"] == c0  # the whole directory, each byte once; not c1
        assert sum(t["blocks"] for t in report["tiers"]) == 30
        assert report["prefetched_blocks"] >= 29
        for key, value in data.items():  # byte for byte, prefetched or not
            assert (m.path / key).read_bytes() == value


def test_unmount_during_a_prefetch_stops_it_cleanly(
    s3_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    store = S3Store(s3_server)
    data = {f"train/img{i:03d}.jpg": os.urandom(20_000 + i) for i in range(200)}
    for key, value in data.items():
        store.put(key, value)
    store.options["endpoint"] = proxy.endpoint
    proxy.add(Fault("delay", -1, seconds=1.0, method="GET"))  # 200 files: 13 s of prefetch
    with mounted(store, tmp_path, "ro") as m:
        pid = m.pid()
        assert (m.path / "train" / "img000.jpg").read_bytes() == data["train/img000.jpg"]
        m.umount()  # queued prefetches dropped, those under way finished: a clean stop
        assert served(str(m.path)) is None
        assert pid is not None and not alive(pid)
    assert "clean" in shoal("fsck", home=m.home).stdout
    report = json.loads(shoal("report", "--json", home=m.home).stdout)
    # It was under way (its first fetches started with the reader's, a second before the
    # unmount, and were finished and stored), and it was cut short.
    assert 2 <= sum(t["blocks"] for t in report["tiers"]) < len(data)
    proxy.clear()
    with mounted(store, tmp_path, "ro") as again:  # what was stored is whole; the rest comes
        for key, value in data.items():
            assert (again.path / key).read_bytes() == value

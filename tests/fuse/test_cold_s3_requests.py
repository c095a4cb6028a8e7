"""A cold read of a small S3 file through a real mount costs one request: its GET, which
brings the object's owner and mode too (engine/provisional.py). A HEAD at the lookup before it
doubled the round trips, and under the kernel's per-directory lookup lock it serialized every
reader of a directory (issue 16: 35 files/s from 4 readers where direct GETs made 153)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cli.bench.faultproxy import FaultProxy
from cli.bench.s3server import S3Server
from cli.stats_cmd import DaemonLink
from tests.fuse.mounting import mounted
from tests.ufs.stores import S3Store


def test_a_cold_small_s3_file_costs_one_get_and_no_head(
    s3_server: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    store = S3Store(s3_server)
    data = {f"train/c0/img{i:02d}.jpg": os.urandom(20_000 + i) for i in range(12)}
    meta = {"mode": str(stat.S_IFREG | 0o644), "uid": "1000", "gid": "1001"}
    for key, value in data.items():
        store.client.put_object(Bucket=store.bucket, Key=f"ds/{key}", Body=value, Metadata=meta)
    store.options["endpoint"] = proxy.endpoint
    with mounted(store, tmp_path, "ro", "prefetch=false") as m:
        assert sorted(os.listdir(m.path / "train" / "c0")) == sorted(
            os.path.basename(k) for k in data
        )
        proxy.clear()  # what the mount and the listing asked for
        for key, value in data.items():
            assert (m.path / key).read_bytes() == value
        methods = [method for method, _path in proxy.requests]
        assert (methods.count("HEAD"), methods.count("GET")) == (0, len(data))
        for key in data:  # the GETs brought the store's owner and mode: no request for them
            st = os.stat(m.path / key)
            assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 1000, 1001)
        assert [method for method, _path in proxy.requests].count("HEAD") == 0


def test_the_pass_after_a_cold_one_asks_the_daemon_only_to_open(
    s3_server: S3Server, tmp_path: Path
) -> None:
    store = S3Store(s3_server)
    data = {f"train/c0/img{i:02d}.jpg": os.urandom(20_000 + i) for i in range(12)}
    for key, value in data.items():
        store.put(key, value)
    with mounted(store, tmp_path, "ro", "prefetch=false") as m:
        for key, value in data.items():  # cold: provisional attributes completed by the GETs
            assert (m.path / key).read_bytes() == value
        link = DaemonLink(str(m.path))
        try:
            before = link.sample()["ops"]
            for key, value in data.items():
                assert (m.path / key).read_bytes() == value
            after = link.sample()["ops"]
        finally:
            link.close()
        asked = {
            kind: after[kind]["calls"] - before.get(kind, {"calls": 0})["calls"]
            for kind in after
            if after[kind]["calls"] != before.get(kind, {"calls": 0})["calls"]
        }
        asked.pop("release", None)  # sent by the kernel after close() returns: maybe not yet
        # Names, attributes and pages were kept: a provisional entry's timeout 0 outliving
        # its completion sent every file's LOOKUP again, one at a time per directory.
        assert asked == {"open": len(data)}

"""Google Cloud Storage through a real mount (issue 18's show): `shoal mount gs://...` against
the GCS emulator read twice, the second pass sending no request to the store (counted at the
fault proxy in front of it); and `shoal fs mount` of gs:// beside s3:// in one namespace."""

from __future__ import annotations

import os
from pathlib import Path

from cli.bench.faultproxy import FaultProxy
from cli.bench.gcsserver import GCSServer
from cli.bench.s3server import S3Server
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import mounted
from tests.ufs.stores import GCSStore, S3Store


def test_a_gcs_mount_read_twice_asks_the_store_once(
    gcs_server: GCSServer, gcs_proxy: FaultProxy, tmp_path: Path
) -> None:
    store = GCSStore(gcs_server)
    data = {f"train/shard{i}.bin": os.urandom(100_000 + i) for i in range(5)}
    for key, value in data.items():
        store.put(key, value)
    store.options["endpoint"] = gcs_proxy.endpoint
    with mounted(store, tmp_path, "ro") as m:
        for key, value in data.items():
            assert (m.path / key).read_bytes() == value
        first = list(gcs_proxy.requests)
        assert sum(1 for method, path in first if "alt=media" in path) >= len(data)
        shoal("report", "--idle", home=m.home)  # the storer has put every block in the cache
        gcs_proxy.clear()
        for key, value in data.items():
            assert (m.path / key).read_bytes() == value
        assert sorted(os.listdir(m.path / "train")) == sorted(k.split("/")[1] for k in data)
        assert gcs_proxy.requests == []  # metadata and bytes, all served from the cache


def test_gcs_and_s3_side_by_side_in_one_namespace(
    gcs_server: GCSServer, s3_server: S3Server, tmp_path: Path
) -> None:
    gcs, s3 = GCSStore(gcs_server), S3Store(s3_server)
    gcs.put("models/a.ckpt", b"from gcs")
    s3.put("images/b.jpg", b"from s3")
    home = tmp_path / "home"
    home.mkdir()
    shoal("init", home=home)
    for at, store in (("/gcs", gcs), ("/s3", s3)):
        options = [arg for key, value in store.options.items() for arg in ("-o", f"{key}={value}")]
        shoal("fs", "mount", at, store.uri, *options, home=home)
    listed = shoal("fs", "ls", "-R", "/", home=home).stdout
    assert "/gcs/models:" in listed and "a.ckpt" in listed
    assert "/s3/images:" in listed and "b.jpg" in listed

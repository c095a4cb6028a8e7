"""Owners and modes an S3 listing did not read (engine/provisional.py): provisional (root's,
0600) until the first GET brings the object's, or a stat reads them where they are needed
first; kept across a restart; never uploaded in place of the store's."""

from __future__ import annotations

import io
import stat

from cli.bench.s3server import S3Server
from engine.inode import PROVISIONAL
from tests.engine.content import content
from tests.homes import SsdHome
from tests.invariants import OpenEngine
from tests.ufs.stores import S3Store

WHEN = 1_600_000_000_000_000_000
META = {"mode": str(0o100640), "uid": "1000", "gid": "1001", "mtime": "1600000000"}


def _put(store: S3Store, key: str, data: bytes) -> None:
    store.client.put_object(Bucket=store.bucket, Key=f"ds/{key}", Body=data, Metadata=META)


def _attrs(node: object) -> tuple[int, int, int]:
    return stat.S_IMODE(node.mode), node.uid, node.gid  # type: ignore[attr-defined]


def test_a_listed_object_is_provisional_until_its_first_get(
    s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    data = content(3, 150_000)
    _put(store, "d/f", data)
    engine = open_engine(ssd_home())
    fs = engine.fs
    fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    node = engine.sync.lookup("/m/d/f")
    # Open to root alone until the store's are known: nobody is shown more than it may grant.
    assert node.flags & PROVISIONAL and _attrs(node) == (0o600, 0, 0)
    assert fs.read("/m/d/f", 0, len(data)) == data
    assert not node.flags & PROVISIONAL
    assert _attrs(node) == (0o640, 1000, 1001) and node.mtime == WHEN
    engine.close()
    engine = open_engine()
    again = engine.sync.lookup("/m/d/f")
    assert not again.flags & PROVISIONAL and _attrs(again) == (0o640, 1000, 1001)
    engine.close()


def test_provisional_attributes_survive_a_restart_and_settle_from_a_stat(
    s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    _put(store, "g", b"x" * 1000)
    engine = open_engine(ssd_home())
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    assert engine.sync.lookup("/m/g").flags & PROVISIONAL
    engine.close()
    engine = open_engine()  # replayed (a checkpoint at close): still provisional, not 0600 for good
    node = engine.sync.lookup("/m/g")
    assert engine.fs.attrs_pending(node) and _attrs(node) == (0o600, 0, 0)
    engine.fs.settle_attrs(node)  # what a GETATTR does before any read
    assert not engine.fs.attrs_pending(node) and _attrs(node) == (0o640, 1000, 1001)
    engine.close()


def test_a_rewrite_of_a_provisional_file_uploads_the_stores_owner_and_mode(
    s3_server: S3Server, ssd_home: SsdHome, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)
    _put(store, "h", b"old")
    engine = open_engine(ssd_home())
    fs = engine.fs
    fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    assert engine.sync.lookup("/m/h").flags & PROVISIONAL
    fs.write_file("/m/h", io.BytesIO(b"new"), 0o644, 0, 0, write_type="THROUGH")
    head = store.client.head_object(Bucket=store.bucket, Key="ds/h")["Metadata"]
    assert (head["mode"], head["uid"], head["gid"]) == (str(0o100640), "1000", "1001")
    assert store.get("h") == b"new"
    engine.close()

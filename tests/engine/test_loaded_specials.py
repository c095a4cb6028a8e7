"""Special files found in a store (a local directory's fifo, an S3 object or an Azure blob whose
metadata names a fifo) are loaded with the store's mtime, as regular files and directories are,
and on a local store follow it when a later listing finds it changed."""

from __future__ import annotations

import os
import stat

from tests.invariants import OpenEngine
from tests.ufs.stores import AzureStore, GCSStore, LocalStore, S3Store, Store

PAST = 1_500_000_000_123_456_789
LATER = 1_600_000_000_000_000_000


def fifo_in_store(store: Store, key: str, mtime_ns: int) -> None:
    """A fifo made in the store directly, with its mtime in the past."""
    if isinstance(store, LocalStore):
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.mkfifo(path, 0o640)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        return
    seconds, ns = divmod(mtime_ns, 1_000_000_000)
    meta = {"mode": str(stat.S_IFIFO | 0o640), "mtime": f"{seconds}.{ns:09d}"}
    if isinstance(store, AzureStore):  # the same metadata names, on a blob
        store.client.upload_blob(f"ds/{key}", b"", metadata=meta, overwrite=True)
        return
    if isinstance(store, GCSStore):  # the same custom metadata names as S3's
        blob = store.bucket.blob(f"ds/{key}")
        blob.metadata = meta
        blob.upload_from_string(b"")
        return
    assert isinstance(store, S3Store)
    store.client.put_object(Bucket=store.bucket, Key=f"ds/{key}", Body=b"", Metadata=meta)


def test_a_loaded_fifo_has_the_stores_mtime(store: Store, open_engine: OpenEngine) -> None:
    fifo_in_store(store, "d/fifo", PAST)
    engine = open_engine()
    engine.ns.mkdir("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    node = engine.sync.lookup("/m/d/fifo")
    assert stat.S_ISFIFO(node.mode) and stat.S_IMODE(node.mode) == 0o640
    assert node.mtime == PAST
    if not isinstance(store, LocalStore):
        return  # an S3 fingerprint is the ETag: a change of metadata alone is not one
    fifo_in_store(store, "d/fifo", LATER)  # touched in the store: a sync follows
    engine.sync.sync("/m", recursive=True)
    assert engine.sync.lookup("/m/d/fifo").mtime == LATER

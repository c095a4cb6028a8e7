"""An S3 listing reads no object metadata (engine/provisional.py): through a real allow_other
mount over S3 (moto over HTTP), the modes kept in x-amz-meta-* still decide what user nobody
may read from the very first access, before any GET of the object; and once root has read an
object, its GET alone has brought the store's owner and mode."""

from __future__ import annotations

import os
import stat

import pytest

from cli.bench.s3server import S3Server
from tests.fuse.mounting import mounted
from tests.fuse.otheruser import NOBODY, OTHER, nobody_says, reachable_dir
from tests.ufs.stores import S3Store


def _put(store: S3Store, key: str, data: bytes, mode: int, uid: int = 0) -> None:
    meta = {"mode": str(stat.S_IFREG | mode), "uid": str(uid), "gid": str(uid)}
    store.client.put_object(Bucket=store.bucket, Key=f"ds/{key}", Body=data, Metadata=meta)


def test_stored_modes_hold_for_nobody_from_the_first_access_without_a_head_per_object(
    request: pytest.FixtureRequest,
) -> None:
    server: S3Server = request.getfixturevalue("s3_server")
    store = S3Store(server)
    _put(store, "d/secret", b"root's secret", 0o600)
    _put(store, "d/theirs", b"user 1000's", 0o600, OTHER)
    _put(store, "d/public", b"everyone reads", 0o644)
    _put(store, "d/mine", b"nobody's own", 0o400, NOBODY)
    _put(store, "d/seen", b"read by root first", 0o640, OTHER)
    with reachable_dir("shoal-provisional-") as base, mounted(store, base, "allow_other") as m:
        d = m.path / "d"
        # The listing, by nobody first: every file's first access is nobody's own open.
        lines = nobody_says(
            f"d = {str(d)!r}\n"
            "print(sorted(os.listdir(d)))\n"
            "attempt('read secret', lambda: open(d + '/secret').read())\n"
            "attempt('read theirs', lambda: open(d + '/theirs').read())\n"
            "print(open(d + '/public').read())\n"
            "print(open(d + '/mine').read())\n"
        )
        assert lines == [
            "['mine', 'public', 'secret', 'seen', 'theirs']",
            "read secret EACCES",
            "read theirs EACCES",
            "everyone reads",
            "nobody's own",
        ]
        # Root's read GETs the object, whose reply carries its metadata: stat shows the store's.
        assert (d / "seen").read_bytes() == b"read by root first"
        st = os.stat(d / "seen")
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, OTHER, OTHER)
        assert stat.S_IMODE(os.stat(d / "public").st_mode) == 0o644
        assert (os.stat(d / "mine").st_uid, os.stat(d / "theirs").st_uid) == (NOBODY, OTHER)

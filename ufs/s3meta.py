"""POSIX attributes in S3 object metadata, as other S3 file systems keep them.

s3fs-fuse writes ``x-amz-meta-mode`` as the decimal st_mode (file type bits included: 33188 for a
0644 file), ``x-amz-meta-uid`` and ``x-amz-meta-gid`` in decimal, and ``x-amz-meta-mtime`` in
seconds since the epoch; rclone writes the same mtime with a fraction. Shoal writes all four as
s3fs does, the mtime with nine fraction digits (both read it), and reads either. A value that
is missing or does not parse is None: the engine's default applies.
"""

from __future__ import annotations

import stat as st
from collections.abc import Mapping
from typing import Any

from ufs.base import UfsAttrs, UfsStatus


def posix_metadata(attrs: UfsAttrs | None, *, directory: bool) -> dict[str, str]:
    """The user metadata (x-amz-meta-*, boto3 adds the prefix) that records ``attrs``."""
    if attrs is None:
        return {}
    out: dict[str, str] = {}
    if attrs.mode is not None:
        kind = st.S_IFDIR if directory else st.S_IFREG
        out["mode"] = str(kind | (attrs.mode & 0o7777))
    if attrs.uid is not None:
        out["uid"] = str(attrs.uid)
    if attrs.gid is not None:
        out["gid"] = str(attrs.gid)
    if attrs.mtime_ns is not None:
        seconds, ns = divmod(attrs.mtime_ns, 1_000_000_000)
        out["mtime"] = f"{seconds}.{ns:09d}"
    return out


def special_metadata(mode: int, attrs: UfsAttrs | None) -> dict[str, str]:
    """The metadata of a new special file of ``mode`` (its type bits, and its permission bits
    unless ``attrs`` has them) with ``attrs``: the type in x-amz-meta-mode, as s3fs-fuse has it."""
    out = posix_metadata(attrs, directory=False)
    bits = mode if attrs is None or attrs.mode is None else attrs.mode
    out["mode"] = str(st.S_IFMT(mode) | (bits & 0o7777))
    return out


def replaced_metadata(meta: Mapping[str, str], attrs: UfsAttrs) -> dict[str, str]:
    """An object's metadata ``meta`` with ``attrs`` recorded in it: a special file keeps the
    type its mode names (a chmod of a fifo leaves a fifo, not a regular file)."""
    out = dict(meta)
    out.update(posix_metadata(attrs, directory=False))
    special, _rdev = _special(meta)
    if special and attrs.mode is not None:
        out["mode"] = str(special | (attrs.mode & 0o7777))
    return out


def _number(meta: Mapping[str, str], key: str) -> int | None:
    try:
        value = int(meta[key])
    except (KeyError, ValueError):
        return None
    return value if value >= 0 else None


def _mtime_ns(meta: Mapping[str, str]) -> int | None:
    """x-amz-meta-mtime: seconds, as s3fs writes them, or with a fraction (rclone, us)."""
    raw = meta.get("mtime", "")
    seconds, _dot, fraction = raw.strip().partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        return None
    return int(seconds) * 1_000_000_000 + int((fraction or "0")[:9].ljust(9, "0"))


def _attrs(meta: Mapping[str, str] | None) -> tuple[int | None, int | None, int | None]:
    if not meta:
        return None, None, None
    mode = _number(meta, "mode")
    return (None if mode is None else mode & 0o7777), _number(meta, "uid"), _number(meta, "gid")


def file_status(
    rel: str,
    size: int,
    modified: Any,
    etag: str,
    meta: Mapping[str, str] | None = None,
    attrs_known: bool = True,
) -> UfsStatus:
    mtime_ns = _mtime_ns(meta) if meta else None
    if mtime_ns is None:
        mtime_ns = int(modified.timestamp() * 1_000_000_000)
    fingerprint = f"{size}-{etag.strip(chr(34))}"
    special, rdev = _special(meta) if meta and not size else (0, 0)
    mode, uid, gid = _attrs(meta)
    return UfsStatus(
        rel, False, size, mtime_ns, fingerprint, special, rdev, mode=mode, uid=uid, gid=gid,
        attrs_known=attrs_known,
    )  # fmt: skip


def _special(meta: Mapping[str, str]) -> tuple[int, int]:
    """(type bits, rdev) of an empty object whose x-amz-meta-mode names a special file (as
    s3fs-fuse writes them); (0, 0) for anything else."""
    try:
        mode = int(meta.get("mode", ""))
        rdev = int(meta.get("rdev", "0"))
    except ValueError:
        return 0, 0
    fmt = st.S_IFMT(mode)
    if fmt not in (st.S_IFIFO, st.S_IFSOCK, st.S_IFCHR, st.S_IFBLK):
        return 0, 0
    return fmt, rdev if fmt in (st.S_IFCHR, st.S_IFBLK) else 0


def reply_status(rel: str, reply: Mapping[str, Any], with_meta: bool) -> UfsStatus:
    """The status of the object a (ranged) GET's ``reply`` came from: its whole size is in
    Content-Range ("bytes 0-9/1234"), its metadata in the headers, as a HEAD's."""
    total = str(reply.get("ContentRange") or "").rpartition("/")[2]
    size = int(total) if total.isdigit() else reply["ContentLength"]
    meta = reply.get("Metadata") if with_meta else None
    return file_status(rel, size, reply["LastModified"], reply["ETag"], meta)


def dir_status(rel: str, meta: Mapping[str, str] | None) -> UfsStatus:
    mtime_ns = (_mtime_ns(meta) if meta else None) or 0
    mode, uid, gid = _attrs(meta)
    return UfsStatus(rel, True, 0, mtime_ns, "", mode=mode, uid=uid, gid=gid)

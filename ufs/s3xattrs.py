"""Extended attributes in S3 object metadata, as s3fs-fuse keeps them, so that a bucket shared
with it looks the same through both: one ``x-amz-meta-xattr`` header holding the URL-encoded
JSON object ``{"name": "base64 of the value"}``."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from urllib.parse import quote, unquote

XATTR_META = "xattr"  # boto3's Metadata key for x-amz-meta-xattr
# S3 holds 2 KB of user metadata per object (keys and values); the rest is left for the other
# metadata (mode, owner, times) kept beside the attributes.
XATTR_META_MAX = 1536


def encode_xattrs(xattrs: Mapping[str, bytes]) -> str:
    """The x-amz-meta-xattr value s3fs-fuse writes for ``xattrs``."""
    body = {name: base64.b64encode(value).decode() for name, value in sorted(xattrs.items())}
    return quote(json.dumps(body, separators=(",", ":")), safe="")


def decode_xattrs(header: str) -> dict[str, bytes]:
    """The user.* attributes in an x-amz-meta-xattr value (s3fs-fuse's, or ours); a header
    that is not one gives none."""
    try:
        body = json.loads(unquote(header)) if header else {}
        if not isinstance(body, dict):
            return {}
        return {
            str(name): base64.b64decode(value)
            for name, value in body.items()
            if str(name).startswith("user.") and isinstance(value, str)
        }
    except ValueError:
        return {}

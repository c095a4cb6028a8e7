"""ufs/s3time.py against botocore's own timestamp parser: the same instant for every form."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.utils import parse_timestamp as botocore_timestamp

from ufs.s3time import parse_timestamp


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-06T18:00:00.000Z",  # a listing's LastModified
        "2026-12-06T18:00:00Z",
        "2026-12-06T18:00:00.123456Z",
        "2026-12-06T19:30:00+01:30",
        "Sun, 06 Dec 2026 18:00:00 GMT",  # a GET's or HEAD's Last-Modified header
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "2026-12-06T18:00:00",  # no zone: botocore's answer, as it was
        "1765044000",  # epoch seconds
        1765044000,
        "Sun, 06 Dec 2026 18:00:00 -0000",  # RFC 2822's "unknown zone": botocore's rule
    ],
)
def test_s3_timestamps_parse_to_botocores_instant(value: Any) -> None:  # an int too
    ours, theirs = parse_timestamp(value), botocore_timestamp(value)
    assert ours == theirs and (ours.tzinfo is None) == (theirs.tzinfo is None)

"""The checksum of a cached block: CRC-32 with zlib's polynomial and values (what BlockCached
journals), computed by ISA-L (python-isal) when it is installed, by zlib otherwise.

A block in a disk tier is checked at its first read after every start (engine/cache/checked.py),
on the FUSE event loop when it is small. zlib 1.2's CRC-32 costs ~30 µs for a 110 KB block on
the machine of docs/benchmarks.md, a sixth of all a small file served from the tiers cost;
ISA-L's (carry-less multiply) ~2.4 µs, for the same value.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

crc32: Callable[[bytes | bytearray | memoryview], int]
try:
    from isal import isal_zlib

    crc32 = isal_zlib.crc32
except ImportError:  # not installed: zlib's, slower, the same values
    crc32 = zlib.crc32

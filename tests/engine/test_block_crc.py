"""The block checksum: zlib's CRC-32 values whatever computes them, since BlockCached entries
journaled by one install are checked by another (one with ISA-L, one without)."""

from __future__ import annotations

import importlib.util
import os
import zlib

from engine.cache import crc


def test_block_crc_gives_zlibs_values_for_any_buffer() -> None:
    for n in (0, 1, 7, 4096, 110_000, (1 << 20) + 3):
        data = os.urandom(n)
        assert crc.crc32(data) == zlib.crc32(data)
        assert crc.crc32(memoryview(data)) == zlib.crc32(data)
        assert crc.crc32(bytearray(data)) == zlib.crc32(data)


def test_block_crc_uses_isal_when_installed() -> None:
    # The speed is the point of the module (benchmarks measure it): an install with ISA-L
    # must not fall back to zlib's slower CRC unnoticed.
    if importlib.util.find_spec("isal") is None:
        assert crc.crc32 is zlib.crc32
    else:
        from isal import isal_zlib

        assert crc.crc32 is isal_zlib.crc32

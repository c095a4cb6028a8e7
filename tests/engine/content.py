"""File contents that a test and the writer processes it starts both know by number."""

from __future__ import annotations

import hashlib


def content(i: int, size: int = 150_000) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (size // 32) + bytes(i % 7)

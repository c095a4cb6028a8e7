"""Namespace paths as the CLI takes them."""

from __future__ import annotations


def absolute(path: str) -> str:
    """A relative path is taken from the namespace root."""
    return path if path.startswith("/") else "/" + path

"""What the benchmarks need beyond the runtime: moto (their S3 server) and matplotlib (charts)
are test extras, which `pip install .` leaves out. A benchmark missing one is refused in one
line before it starts, not with a traceback minutes in."""

from __future__ import annotations

import importlib.util

from engine.errors import Unavailable


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str, needed_by: str) -> None:
    if not installed(module):
        raise Unavailable(
            f"{needed_by} needs {module}, one of the test extras:"
            " pip install 'shoal[test]' (or .[test] from a checkout)"
        )

"""The benches' memory warm-up (cli/bench/prefault.py): it touches what is asked, never more
than its share of the available memory."""

from __future__ import annotations

import psutil

from cli.bench.prefault import prefault


def test_prefault_touches_what_is_asked() -> None:
    assert prefault(8 << 20) == 8 << 20


def test_prefault_is_capped_at_its_share_of_the_available_memory() -> None:
    available = psutil.virtual_memory().available
    assert available > 0
    touched = prefault(available * 4, share=0.01)
    assert 0 < touched <= available * 0.02  # the share of what was available then (it moves)

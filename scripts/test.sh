#!/usr/bin/env bash
# The whole test suite (lint and type checks included), after installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# Two workers, a test module each at a time: the suite mostly waits on mounts, servers and
# fsyncs (load average ~1.3 on 2 cores run serially). Every test is written to share the machine.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=15 "$@"

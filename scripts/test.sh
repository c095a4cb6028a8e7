#!/usr/bin/env bash
# The whole test suite (lint and type checks included), after installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m pytest -q "$@"

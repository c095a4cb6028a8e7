#!/usr/bin/env bash
# Installs everything Shoal needs on a fresh Debian 12 machine with Python 3.11, as root:
# system packages, then a virtual environment in .venv with Shoal and its test tools.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# The distribution's Python 3.11 when there is one, even if another python3 comes first on PATH:
# Debian builds it with PGO and LTO, and Shoal's hot paths (the journal's commit path, replay)
# ran 30-45% faster on it than on a source build without them (pyenv's default) on the same
# machine (docs/benchmarks.md). It is also the Python that python3-dev's headers are for.
python=python3
[ -x /usr/bin/python3.11 ] && python=/usr/bin/python3.11

# etcd-server: cluster mode's coordination (docs/cluster.md); tests start private ones on free
# ports, never the package's own service.
packages=(fuse3 libfuse3-dev pkg-config python3-venv python3-dev gcc rsync git sqlite3 etcd-server)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# python3-venv is only needed where that Python cannot already make a venv (Debian's own).
if [ ${#missing[@]} -gt 0 ] && "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [ "$p" = python3-venv ] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A .venv made from another interpreter is made again (compared as the interpreters see
# themselves: a pyenv shim is a script, not the Python it runs).
base_of() { "$1" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))'; }
if [ -x .venv/bin/python ] && [ "$(base_of .venv/bin/python)" != "$(base_of "$python")" ]; then
  echo "install.sh: .venv runs $(base_of .venv/bin/python); making it again with $python"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e '.[test]'; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install.sh: pip could not install Shoal (output above)" >&2
  exit 1
fi
rm -f "$log"

# Azurite, the Azure Blob emulator the az:// tests run (cli/bench/azurite.py), into .tools/ with
# npm (Node.js 18 or later); skipped when it is there, or when there is no npm (those tests then
# fail saying to run this script).
if [ ! -x .tools/node_modules/.bin/azurite-blob ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p .tools
    log=$(mktemp)
    if ! npm install --prefix .tools --no-audit --no-fund azurite >"$log" 2>&1; then
      cat "$log" >&2
      echo "install.sh: npm could not install azurite (output above)" >&2
      exit 1
    fi
    rm -f "$log"
  else
    echo "install.sh: no npm: the Azure tests need azurite (apt-get install npm, run again)" >&2
  fi
fi

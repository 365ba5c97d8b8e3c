#!/usr/bin/env bash
# A private Python 3.13 environment for the test suite (OpenWrt 25.12 ships
# Python 3.13 and python3-pyroute2 0.7.9; 24.10 ships 3.11): a venv at $1
# (default build/py313) with what the tests need, pyroute2 pinned to
# OpenWrt 25.12's. Nothing is installed outside it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-build/py313}

# python3.13 in PATH if it runs (a pyenv shim of a version not selected
# does not), else pyenv's.
python313=""
for candidate in "$(command -v python3.13 || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
    if [ -x "$candidate" ] &&
            "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
        python313=$candidate
        break
    fi
done
if [ -z "$python313" ]; then
    echo "py313-venv: no Python 3.13 (python3.13 in PATH, or pyenv's \$PYENV_ROOT/versions/3.13*)" >&2
    exit 1
fi

if ! "$venv/bin/python" -c 'import pyroute2, construct, pytest' 2>/dev/null; then
    echo "py313-venv: $venv from $python313"
    "$python313" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        'pyroute2==0.7.9' 'construct>=2.10,<2.11' 'pytest>=7'
fi

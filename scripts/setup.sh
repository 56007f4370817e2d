#!/usr/bin/env bash
# Create .venv with the CPU build of torch 2.13.0 and KD Explorer (editable, with dev tools).
# torch is pinned and installed first: a bare torch requirement would pull a CUDA build of several GB.
# A second run is instant while pyproject.toml and this script are unchanged (.venv/.kdx-setup holds
# their digest); KDX_SETUP=always installs again.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
stamp=.venv/.kdx-setup
wanted="$(cat pyproject.toml scripts/setup.sh | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ "${KDX_SETUP:-}" != "always" ] && [ -x .venv/bin/kdx ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet --editable ".[dev]"
echo "$wanted" > "$stamp"

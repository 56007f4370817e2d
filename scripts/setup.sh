#!/usr/bin/env bash
# Create .venv with the CPU build of torch 2.13.0 and KD Explorer (editable, with dev tools).
# torch is pinned and installed first: a bare torch requirement would pull a CUDA build of several GB.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet --editable ".[dev]"

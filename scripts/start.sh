#!/usr/bin/env bash
# Set up, then open the dashboard on http://127.0.0.1:8501 over the local store (./mlflow.db),
# which is filled with the example studies of sample_runs/ the first time. Options go to
# `kdx dashboard` (see `kdx dashboard --help`); MLFLOW_TRACKING_URI points it at another store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kdx dashboard "$@"

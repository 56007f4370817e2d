#!/usr/bin/env bash
# Set up, make sure the local store holds a study, and open it in MLflow's UI on http://127.0.0.1:5000.
# The store is ./mlflow.db (SQLite) with artifacts in ./mlartifacts; MLFLOW_TRACKING_URI overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if .venv/bin/kdx studies | grep -q "^no studies"; then
  .venv/bin/kdx run examples/digits_kd.yaml
fi
exec .venv/bin/mlflow ui --backend-store-uri "${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" --port "${PORT:-5000}"

"""KD Explorer's distillation core: configs, registries, data, models, methods, engine and tracking."""

import os

__version__ = "0.1.0"

# MLflow's usage telemetry is off unless the user turns it on (MLFLOW_DISABLE_TELEMETRY=false): a study should
# not send anything anywhere, and the wrappers cost start-up and per-call time. Set before mlflow is imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

"""MLflow's usage telemetry is off by default under kdx, and a user can turn it back on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# MLflow's own reading of the switch (its telemetry is also off in any CI, whatever the switch says)
PROBE = "import kdcore; from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY as v; print(v.get())"


@pytest.mark.parametrize(("given", "disabled"), [(None, "True"), ("false", "False"), ("true", "True")])
def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on(given: str | None, disabled: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    env |= {"MLFLOW_DISABLE_TELEMETRY": given} if given is not None else {}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == disabled

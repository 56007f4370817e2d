"""Shared fixtures: tiny configs, an isolated cache, and a temporary SQLite MLflow store."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["KDX_CACHE_DIR"] = str(tmp_path_factory.mktemp("kdx-cache"))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    # Launched jobs start as new processes: a warm starter per test's jobs folder would keep importing in the
    # background. tests/test_warm_start.py turns it on where it is what is tested.
    os.environ["KDX_WARM_START"] = "0"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread per test: on a busy machine, more threads make small models far slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def sqlite_uri(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"

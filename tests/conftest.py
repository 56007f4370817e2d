"""Shared fixtures: tiny configs, an isolated cache, and a temporary SQLite MLflow store."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["KDX_CACHE_DIR"] = str(tmp_path_factory.mktemp("kdx-cache"))
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture
def sqlite_uri(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"

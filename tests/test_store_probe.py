"""Whether a store holds a study, read straight from a SQLite file (and through MLflow otherwise)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mlflow import MlflowClient

from kdcore.store_probe import is_empty_store
from kdcore.study import Study
from kdcore.tracking import MlflowTracker, list_studies
from tests.helpers import tiny_config


def test_a_missing_file_is_an_empty_store_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    assert is_empty_store(f"sqlite:///{path}") and not path.exists()


def test_a_file_without_the_tracking_schema_is_asked_through_mlflow(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    sqlite3.connect(path).close()  # an empty SQLite file: MLflow creates its tables
    assert is_empty_store(f"sqlite:///{path}")


def test_the_file_answer_agrees_with_mlflow_as_studies_come_and_go(sqlite_uri: str) -> None:
    study_id = Study(tiny_config("train.epochs=1"), MlflowTracker(sqlite_uri), progress=False).run().study_id
    assert not is_empty_store(sqlite_uri) and not list_studies(sqlite_uri).empty
    MlflowClient(sqlite_uri).delete_run(study_id)  # a deleted study is no study
    assert is_empty_store(sqlite_uri) and list_studies(sqlite_uri).empty

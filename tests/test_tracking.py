"""A study logged into a temporary SQLite MLflow store and read back through the reader API."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from kdcore.config import config_from_yaml
from kdcore.models.base import build_model
from kdcore.role_artifacts import WEIGHTS
from kdcore.study import Study
from kdcore.tracking import MlflowTracker, list_runs, list_studies, load_predictions, metric_history
from tests.helpers import tiny_config


@pytest.fixture
def logged_study(sqlite_uri: str):
    cfg = tiny_config("train.epochs=2", "tracking.experiment=roundtrip")
    tracker = MlflowTracker(sqlite_uri, cfg.tracking.experiment)
    summary = Study(cfg, tracker, progress=False).run()
    return cfg, tracker, summary


def test_study_schema_round_trip(logged_study, sqlite_uri: str) -> None:
    cfg, tracker, summary = logged_study
    parent = tracker.get_run(summary.study_id)
    assert parent.status == "FINISHED"
    assert parent.tags["kd.role"] == "study" and parent.tags["kd.study_id"] == summary.study_id
    assert {parent.tags[k] for k in ("kd.method", "kd.mechanism", "kd.knowledge", "kd.dataset")} == {
        "kd", "offline", "response", "digits"}
    assert parent.params["distill.temperature"] == "4.0"
    assert config_from_yaml(tracker.read_bytes(summary.study_id, "config.yaml").decode()) == cfg

    children = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": summary.study_id})
                if r.run_id != summary.study_id}
    assert set(children) == {"teacher", "baseline", "student"}
    for role, run in children.items():
        assert run.tags["mlflow.parentRunId"] == summary.study_id and run.status == "FINISHED"
        for key in ("train/loss", "val/acc", "test/acc", "test/entropy", "test/ece", "model/params",
                    "model/latency_ms", "model/memory_mb", "shift/acc", "test/acc_class_0"):
            assert key in run.metrics, (role, key)
        assert [step for step, _ in tracker.metric_history(run.run_id, "val/acc")] == [0, 1]
    assert "test/agreement" in children["student"].metrics

    weights = torch.load(io.BytesIO(tracker.read_bytes(children["student"].run_id, WEIGHTS)), weights_only=True)
    model = build_model(cfg.student, (1, 8, 8), 10)
    model.load_state_dict(weights)

    studies = list_studies(sqlite_uri)
    row = studies.set_index("study_id").loc[summary.study_id]
    assert row["status"] == "FINISHED" and row["method"] == "kd"
    assert row["student_acc"] == pytest.approx(summary.roles["student"]["test/acc"])
    assert row["ratio_baseline"] == pytest.approx(summary.metrics["study/acc_ratio_baseline"])

    runs = list_runs([summary.study_id], sqlite_uri)
    assert sorted(runs["tags.kd.role"]) == ["baseline", "student", "teacher"]
    assert "metrics.test/acc" in runs and "params.distill.method" in runs

    history = metric_history(list(runs["run_id"]), ["train/loss", "val/acc"], sqlite_uri)
    assert len(history) == 3 * 2 * 2 and set(history["key"]) == {"train/loss", "val/acc"}

    predictions = load_predictions(children["student"].run_id, sqlite_uri)
    assert predictions["test_probs"].shape == (len(predictions["test_labels"]), 10)
    np.testing.assert_allclose(predictions["test_probs"].sum(1), 1.0, rtol=1e-5)
    accuracy = (predictions["test_probs"].argmax(1) == predictions["test_labels"]).mean()
    assert accuracy == pytest.approx(summary.roles["student"]["test/acc"], abs=1e-6)


def test_identical_teacher_is_trained_once(logged_study, sqlite_uri: str) -> None:
    _cfg, tracker, first = logged_study
    second = Study(tiny_config("train.epochs=2", "tracking.experiment=roundtrip", "distill.temperature=8"),
                   tracker, progress=False).run()
    teacher_runs = tracker.find_runs({"kd.role": "teacher"})
    trained = [r for r in teacher_runs if "kd.reused_from" not in r.tags]
    assert len(teacher_runs) == 2 and len(trained) == 1
    assert second.teacher_reused_from == trained[0].run_id
    assert second.roles["teacher"]["test/acc"] == first.roles["teacher"]["test/acc"]
    # no training happened: the reused run draws the curve of the run its weights come from, copied
    (reused,) = (r for r in teacher_runs if "kd.reused_from" in r.tags)
    assert tracker.metric_history(reused.run_id, "train/loss") == tracker.metric_history(trained[0].run_id,
                                                                                           "train/loss") != []

    third = Study(tiny_config("train.epochs=2", "tracking.experiment=roundtrip", "teacher.width=16"),
                  tracker, progress=False).run()
    assert third.teacher_reused_from is None


def test_empty_store_lists_nothing(sqlite_uri: str) -> None:
    assert list_studies(sqlite_uri).empty and list_runs([], sqlite_uri).empty


def test_bulk_history_matches_mlflows_own_reader(logged_study, sqlite_uri: str) -> None:
    _cfg, tracker, summary = logged_study
    runs = list_runs([summary.study_id], sqlite_uri)
    keys = ["train/loss", "val/acc", "test/acc", "no/such-metric"]
    fast = metric_history(list(runs["run_id"]), keys, sqlite_uri)
    expected = sorted((run_id, m.key, m.step, m.value, m.timestamp) for run_id in runs["run_id"] for key in keys
                      for m in tracker.client.get_metric_history(run_id, key))
    assert sorted(fast.itertuples(index=False, name=None)) == expected


@pytest.mark.parametrize("experiment", [None, "roundtrip", "nothing-here"])
def test_sqlite_study_listing_matches_mlflows_search(logged_study, sqlite_uri: str, experiment: str | None) -> None:
    """kdx studies reads a local store with SQLite itself: the same rows, columns and values MLflow's search gives,
    without deleted runs, other experiments' studies or role runs."""
    import math

    from kdcore import local_store, tracking

    _cfg, tracker, summary = logged_study
    tracker.client.set_tag(summary.study_id, "kd.shift", "noise")
    nan_run = tracker.start_run("nan", {"kd.role": "study", "kd.study_id": "x"}, {"a": "1"})
    tracker.log_metrics(nan_run, {"study/speedup": float("nan"), "study/param_ratio": 2.0}, step=0)
    tracker.end_run(nan_run)
    gone = tracker.start_run("deleted", {"kd.role": "study"}, {})
    tracker.end_run(gone)
    tracker.client.delete_run(gone)
    other = MlflowTracker(sqlite_uri, "elsewhere")
    other.end_run(other.start_run("other", {"kd.role": "study"}, {}))
    tracker.flush(nan_run)
    other.flush(nan_run)

    path = local_store.existing_sqlite(sqlite_uri)
    fast = local_store.runs_frame(path, {"kd.role": "study"}, experiment)
    slow = tracking.runs_frame(sqlite_uri, "tags.`kd.role` = 'study'", experiment)
    if experiment == "nothing-here":
        assert fast.empty and slow.empty
        return
    assert list(fast["run_id"]) == list(slow["run_id"]) and gone not in set(fast["run_id"])
    assert len(fast) == (3 if experiment is None else 2)
    assert sorted(fast.columns) == sorted(slow.columns)
    for fast_row, slow_row in zip(fast.to_dict("records"), slow.to_dict("records"), strict=True):
        for key, value in slow_row.items():
            same = (isinstance(value, float) and math.isnan(value) and math.isnan(fast_row[key])) or \
                fast_row[key] == value or (value is None and fast_row[key] is None)
            assert same, (key, fast_row[key], value)
    row = fast.set_index("run_id").loc[nan_run]
    assert math.isnan(row["metrics.study/speedup"]) and row["metrics.study/param_ratio"] == 2.0

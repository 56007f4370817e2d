"""MLflow behind the :class:`~kdcore.tracker.Tracker` interface, and the readers the dashboard uses.

The only module that imports mlflow. The default store is a SQLite file, ``mlflow.db`` in the
working directory, with artifacts in ``mlartifacts/`` beside it: the same places the stock
``mlflow ui`` uses, so running it in that directory shows every study. ``MLFLOW_TRACKING_URI``
(or ``tracking.uri`` in a config) points everything at another store or a shared server.
"""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

from kdcore.tracker import STUDY_ROLE, RunRecord, Tracker

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"

# MLflow announces every run it creates and draws a bar per artifact download; the CLI prints
# its own summary instead.
logging.getLogger("mlflow").setLevel(logging.WARNING)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite) in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def resolve_uri(uri: str | None) -> str:
    return uri or default_tracking_uri()


def _artifact_root(uri: str) -> str | None:
    """``mlartifacts/`` beside a local SQLite file; a server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / DEFAULT_ARTIFACTS).as_uri()
    return None


class MlflowTracker(Tracker):
    """A tracker writing to one MLflow experiment.

    Metrics are buffered per run and written in one ``log_batch`` call at most every
    ``flush_seconds`` (and when the run ends): a live view lags by about a second, while a study
    whose epochs take milliseconds does not spend its time in SQLite commits.
    """

    def __init__(self, uri: str | None = None, experiment: str = "kd-explorer", flush_seconds: float = 1.0) -> None:
        self.uri = resolve_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id = self.client.create_experiment(experiment, _artifact_root(self.uri))
        else:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            self.experiment_id = found.experiment_id
        self.flush_seconds = flush_seconds
        self._buffer: dict[str, list[Metric]] = {}
        self._flushed_at: dict[str, float] = {}

    def start_run(self, name: str, tags: dict[str, str], params: dict[str, str],
                  parent_id: str | None = None) -> str:
        tags = dict(tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[start:start + 100], synchronous=True)
        return run_id

    @classmethod
    def for_run(cls, run_id: str, uri: str | None = None) -> MlflowTracker:
        """A tracker on the experiment that holds ``run_id``."""
        client = MlflowClient(tracking_uri=resolve_uri(uri))
        experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
        return cls(uri, experiment.name)

    def set_status(self, run_id: str, status: str) -> None:
        self.client.update_run(run_id, status=status)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._buffer.setdefault(run_id, []).extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if time.monotonic() - self._flushed_at.get(run_id, 0.0) >= self.flush_seconds:
            self._flush(run_id)

    def _flush(self, run_id: str) -> None:
        items = self._buffer.pop(run_id, [])
        for start in range(0, len(items), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(run_id, metrics=items[start:start + 1000], synchronous=True)
        self._flushed_at[run_id] = time.monotonic()

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True)

    def delete_tag(self, run_id: str, key: str) -> None:
        if key in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, key)

    def log_bytes(self, run_id: str, path: str, data: bytes) -> None:
        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            local.write_bytes(data)
            self.client.log_artifact(run_id, str(local), folder or None)

    def read_bytes(self, run_id: str, path: str) -> bytes:
        return _read_bytes(self.client, run_id, path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._flush(run_id)
        self.client.set_terminated(run_id, status=status)

    def get_run(self, run_id: str) -> RunRecord:
        self._flush(run_id)
        return _record(self.client.get_run(run_id))

    def find_runs(self, tags: dict[str, str], status: str | None = None) -> list[RunRecord]:
        clauses = [f"tags.`{k}` = '{_quote(v)}'" for k, v in tags.items()]
        if status:
            clauses.append(f"attributes.status = '{status}'")
        runs = _search_all(self.client, [self.experiment_id], " AND ".join(clauses))
        return [_record(run) for run in runs]

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        self._flush(run_id)
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))


def _read_bytes(client: MlflowClient, run_id: str, path: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")


def _record(run: object) -> RunRecord:
    info, data = run.info, run.data  # type: ignore[attr-defined]
    return RunRecord(info.run_id, info.run_name or "", info.status, dict(data.tags), dict(data.params),
                     dict(data.metrics), info.start_time or 0)


def _search_all(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> list[object]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, ViewType.ACTIVE_ONLY, max_results=1000,
                                  order_by=["attributes.start_time DESC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


# --- readers for the CLI and the dashboard ------------------------------------------------------
STUDY_COLUMNS = {
    "tags.kd.dataset": "dataset", "tags.kd.teacher": "teacher", "tags.kd.student": "student",
    "tags.kd.method": "method", "tags.kd.mechanism": "mechanism", "tags.kd.knowledge": "knowledge",
    "metrics.study/teacher_acc": "teacher_acc", "metrics.study/baseline_acc": "baseline_acc",
    "metrics.study/student_acc": "student_acc", "metrics.study/acc_ratio_teacher": "ratio_teacher",
    "metrics.study/acc_ratio_baseline": "ratio_baseline", "metrics.study/param_ratio": "param_ratio",
    "metrics.study/speedup": "speedup", "tags.kd.findings": "findings",
    "metrics.study/gates_passed": "gates_passed", "metrics.study/gates_failed": "gates_failed",
    "tags.kd.failure_reason": "failure_reason",
}


def _experiment_ids(client: MlflowClient, experiment: str | None) -> list[str]:
    if experiment is None:
        return [e.experiment_id for e in client.search_experiments(ViewType.ACTIVE_ONLY)]
    found = client.get_experiment_by_name(experiment)
    return [found.experiment_id] if found else []


def _runs_frame(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> pd.DataFrame:
    rows = []
    for run in _search_all(client, experiment_ids, filter_string) if experiment_ids else []:
        row = {"run_id": run.info.run_id, "name": run.info.run_name, "status": run.info.status,
               "experiment_id": run.info.experiment_id,
               "start_time": pd.to_datetime(run.info.start_time, unit="ms"),
               "end_time": pd.to_datetime(run.info.end_time, unit="ms") if run.info.end_time else pd.NaT}
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def list_studies(uri: str | None = None, experiment: str | None = None) -> pd.DataFrame:
    """One row per study, newest first: what, how, the three accuracies, the ratios and the status."""
    client = MlflowClient(tracking_uri=resolve_uri(uri))
    frame = _runs_frame(client, _experiment_ids(client, experiment), f"tags.`kd.role` = '{STUDY_ROLE}'")
    columns = ["study_id", "name", "status", "start_time", "end_time", *STUDY_COLUMNS.values()]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.rename(columns={"run_id": "study_id", **STUDY_COLUMNS})
    for column in columns:
        if column not in frame:
            frame[column] = np.nan
    return frame[columns].reset_index(drop=True)


def list_runs(study_ids: list[str], uri: str | None = None) -> pd.DataFrame:
    """Every role run of the given studies, with ``tags.*``, ``params.*`` and ``metrics.*`` columns."""
    if not study_ids:
        return pd.DataFrame()
    uri = resolve_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    experiments = _experiment_ids(client, None)
    if uri.startswith("sqlite:///"):
        try:  # MLflow's search has no IN for tags, but has one for run ids: find those in one query
            run_ids = _sqlite_role_runs(uri.removeprefix("sqlite:///"), list(study_ids))
            frames = [_runs_frame(client, experiments, "attributes.run_id IN ({})".format(
                ", ".join(f"'{_quote(r)}'" for r in run_ids[start:start + 100])))
                for start in range(0, len(run_ids), 100)]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        except sqlite3.Error:  # an MLflow schema this reader does not know: one search per study
            pass
    frames = [_runs_frame(client, experiments,
                          f"tags.`kd.study_id` = '{_quote(s)}' AND tags.`kd.role` != '{STUDY_ROLE}'")
              for s in study_ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _sqlite_role_runs(path: str, study_ids: list[str]) -> list[str]:
    """Ids of the role runs (not the parents) of the given studies, from MLflow's ``tags`` table."""
    query = (f"SELECT t.run_uuid FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
             f"WHERE t.key = 'kd.study_id' AND t.value IN ({', '.join('?' * len(study_ids))}) "
             f"AND t.run_uuid NOT IN ({', '.join('?' * len(study_ids))}) AND r.lifecycle_stage = 'active'")
    with closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as connection:
        return [row[0] for row in connection.execute(query, [*study_ids, *study_ids])]


def metric_history(run_ids: list[str], keys: list[str], uri: str | None = None) -> pd.DataFrame:
    """Long table (run_id, key, step, value, timestamp) of the given metrics, for curves."""
    uri = resolve_uri(uri)
    if uri.startswith("sqlite:///") and run_ids and keys:
        try:
            return _sqlite_history(uri.removeprefix("sqlite:///"), list(run_ids), list(keys))
        except sqlite3.Error:  # an MLflow schema this reader does not know: use the API below
            pass
    client = MlflowClient(tracking_uri=uri)
    # A SQL store answers one query per metric for all runs; elsewhere it is one call per run and metric.
    bulk = getattr(client._tracking_client.store, "get_metric_history_bulk", None)
    if bulk is not None and run_ids:
        rows = [(m.run_id, m.key, m.step, m.value, m.timestamp)
                for key in keys for m in bulk(list(run_ids), key, max_results=None)]
    else:
        rows = [(run_id, m.key, m.step, m.value, m.timestamp)
                for run_id in run_ids for key in keys for m in client.get_metric_history(run_id, key)]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])
    return frame.sort_values(["run_id", "key", "step"]).reset_index(drop=True)


def _sqlite_history(path: str, run_ids: list[str], keys: list[str]) -> pd.DataFrame:
    """One read-only SQL query over MLflow's ``metrics`` table: curves of many runs in milliseconds,
    where building MLflow's entity objects row by row takes seconds for 50,000 points."""
    query = (f"SELECT run_uuid AS run_id, key, step, CASE WHEN is_nan THEN NULL ELSE value END AS value, timestamp "
             f"FROM metrics WHERE run_uuid IN ({', '.join('?' * len(run_ids))}) "
             f"AND key IN ({', '.join('?' * len(keys))}) ORDER BY run_uuid, key, step, timestamp")
    with closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as connection:
        return pd.read_sql_query(query, connection, params=[*run_ids, *keys])


def load_predictions(run_id: str, uri: str | None = None) -> dict[str, np.ndarray]:
    """Per-sample test and shifted-test probabilities and labels of one role run."""
    client = MlflowClient(tracking_uri=resolve_uri(uri))
    with np.load(io.BytesIO(_read_bytes(client, run_id, "predictions.npz"))) as data:
        return {key: data[key] for key in data.files}


# --- stored runs, exported and replayed as plain files (kdcore.samples) -----------------------------
@dataclass
class StoredRun:
    """One run as the store holds it, artifacts aside: enough to write it out and replay it."""

    run_id: str
    name: str
    status: str
    start_time: int  # ms since the epoch
    end_time: int | None
    tags: dict[str, str]
    params: dict[str, str]
    history: dict[str, list[tuple[int, float, int]]]  # metric key -> (step, value, timestamp ms) rows
    artifacts: list[str]  # top-level artifact paths


def study_runs(study_id: str, uri: str | None = None) -> list[StoredRun]:
    """A study's parent run, then its nested runs oldest first, each with every metric's full history."""
    client = MlflowClient(tracking_uri=resolve_uri(uri))
    parent = client.get_run(study_id)
    children = _search_all(client, [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{_quote(study_id)}'")
    return [_stored(client, run) for run in [parent, *reversed(children)]]


def _stored(client: MlflowClient, run: object) -> StoredRun:
    info, data = run.info, run.data  # type: ignore[attr-defined]
    history = {key: sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(info.run_id, key))
               for key in sorted(data.metrics)}
    return StoredRun(info.run_id, info.run_name or "", info.status, info.start_time or 0, info.end_time,
                     dict(data.tags), dict(data.params), history,
                     [f.path for f in client.list_artifacts(info.run_id)])


def read_artifact(run_id: str, path: str, uri: str | None = None) -> bytes:
    """The bytes of one artifact of a run."""
    return _read_bytes(MlflowClient(tracking_uri=resolve_uri(uri)), run_id, path)


def start_run_at(tracker: MlflowTracker, name: str, tags: dict[str, str], params: dict[str, str],
                 start_time: int) -> str:
    """Like :meth:`MlflowTracker.start_run`, but started at ``start_time`` (ms): to replay a stored run."""
    run_id = tracker.client.create_run(tracker.experiment_id, start_time=start_time, tags=tags,
                                       run_name=name).info.run_id
    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        tracker.client.log_batch(run_id, params=items[start:start + 100], synchronous=True)
    return run_id


def log_metric_history(tracker: MlflowTracker, run_id: str,
                       history: dict[str, list[tuple[int, float, int]]]) -> None:
    """Log (step, value, timestamp) rows per metric key with their original timestamps."""
    items = [Metric(key, float(value), int(timestamp), int(step))
             for key, rows in history.items() for step, value, timestamp in rows]
    for start in range(0, len(items), 1000):  # MLflow takes at most 1000 metrics per batch
        tracker.client.log_batch(run_id, metrics=items[start:start + 1000], synchronous=True)


def end_run_at(tracker: MlflowTracker, run_id: str, status: str, end_time: int | None) -> None:
    """Close a run with ``status`` at ``end_time`` (ms; None = now)."""
    tracker.client.set_terminated(run_id, status=status, end_time=end_time)


def delete_runs(tracker: MlflowTracker, run_ids: list[str]) -> None:
    """Move runs to the store's trash (searches no longer see them), e.g. after a failed replay."""
    for run_id in run_ids:
        tracker.client.delete_run(run_id)

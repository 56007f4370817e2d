"""The studies of a store, one row each: what ``kdx studies``, the Studies page and short study ids read.

A local SQLite store is read with SQLite itself (:mod:`kdcore.local_store`), so listing studies costs no MLflow
import; a server, or a SQLite schema that reader does not know, is asked through MLflow.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from kdcore.local_store import existing_sqlite, runs_frame
from kdcore.ownership import GONE_REASON, orphaned
from kdcore.tracker import STUDY_ROLE

STUDY_COLUMNS = {
    "tags.kd.dataset": "dataset", "tags.kd.teacher": "teacher", "tags.kd.student": "student",
    "tags.kd.method": "method", "tags.kd.mechanism": "mechanism", "tags.kd.knowledge": "knowledge",
    "metrics.study/teacher_acc": "teacher_acc", "metrics.study/baseline_acc": "baseline_acc",
    "metrics.study/student_acc": "student_acc", "metrics.study/acc_ratio_teacher": "ratio_teacher",
    "metrics.study/acc_ratio_baseline": "ratio_baseline", "metrics.study/param_ratio": "param_ratio",
    "metrics.study/speedup": "speedup", "tags.kd.findings": "findings",
    "metrics.study/gates_passed": "gates_passed", "metrics.study/gates_failed": "gates_failed",
    "tags.kd.failure_reason": "failure_reason", "tags.kd.shift": "shift",
}


def study_runs(uri: str | None = None, experiment: str | None = None) -> pd.DataFrame:
    """Every study's parent run as :func:`kdcore.tracking.runs_frame` gives it, newest first."""
    path = existing_sqlite(uri)
    if path is not None:
        try:
            return runs_frame(path, {"kd.role": STUDY_ROLE}, experiment)
        except sqlite3.Error:  # not MLflow's schema as this reader knows it: MLflow reads it, or says what is wrong
            pass
    from kdcore.tracking import runs_frame as mlflow_runs_frame

    return mlflow_runs_frame(uri, f"tags.`kd.role` = '{STUDY_ROLE}'", experiment)


def list_studies(uri: str | None = None, experiment: str | None = None) -> pd.DataFrame:
    """One row per study, newest first: what, how, the three accuracies, the ratios and the status."""
    frame = study_runs(uri, experiment)
    columns = ["study_id", "name", "status", "start_time", "end_time", *STUDY_COLUMNS.values()]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.rename(columns={"run_id": "study_id", **STUDY_COLUMNS})
    for column in columns:
        if column not in frame:
            frame[column] = np.nan
    _mark_orphans(frame)
    return frame[columns].reset_index(drop=True)


def _mark_orphans(frame: pd.DataFrame) -> None:
    """Studies that say RUNNING (or SCHEDULED) while the process that owned them is gone are FAILED."""
    owner_columns = [c for c in frame.columns if c.startswith("tags.kd.")]
    frame["failure_reason"] = frame["failure_reason"].astype(object)
    for index, row in frame.iterrows():
        tags = {c.removeprefix("tags."): str(row[c]) for c in owner_columns if isinstance(row[c], str)}
        if orphaned(str(row["status"]), tags):
            frame.loc[index, ["status", "failure_reason"]] = ["FAILED", GONE_REASON]

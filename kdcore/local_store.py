"""Where the default store is, and reads of a local SQLite store made with SQLite itself.

MLflow's SQL store costs seconds to import and builds an entity object per row. Listing studies, finding a
study's role runs and drawing curves only read MLflow's ``runs``, ``experiments``, ``tags``, ``params``,
``latest_metrics`` and ``metrics`` tables, so for a local ``sqlite:///`` store they are one read-only query
each here, with no MLflow import. Every reader raises :class:`sqlite3.Error` on a schema it does not know,
and its caller then asks MLflow.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pandas as pd

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
SQLITE = "sqlite:///"


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else ./mlflow.db (SQLite) in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{Path.cwd() / DEFAULT_DB}"


def resolve_uri(uri: str | None) -> str:
    return uri or default_tracking_uri()


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI, or None when the URI names no file (another scheme, in memory)."""
    if not uri.startswith(SQLITE):
        return None
    path = uri.removeprefix(SQLITE).partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


def existing_sqlite(uri: str | None) -> Path | None:
    """The file of a local SQLite store that exists (the only kind these readers read), else None."""
    path = sqlite_path(resolve_uri(uri))
    return path if path is not None and path.is_file() else None


@contextmanager
def read_only(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A read-only connection: a reader never creates, locks for writing or alters a store."""
    with closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as connection:
        yield connection


def _marks(values: list[str]) -> str:
    return ", ".join("?" * len(values))


def role_run_ids(path: Path | str, study_ids: list[str]) -> list[str]:
    """Ids of the active role runs (not the parents) of the given studies."""
    query = (f"SELECT t.run_uuid FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
             f"WHERE t.key = 'kd.study_id' AND t.value IN ({_marks(study_ids)}) "
             f"AND t.run_uuid NOT IN ({_marks(study_ids)}) AND r.lifecycle_stage = 'active'")
    with read_only(path) as connection:
        return [row[0] for row in connection.execute(query, [*study_ids, *study_ids])]


def metric_history(path: Path | str, run_ids: list[str], keys: list[str]) -> pd.DataFrame:
    """Long table (run_id, key, step, value, timestamp) of the given metrics: curves of many runs in milliseconds,
    where building MLflow's entity objects row by row takes seconds for 50,000 points."""
    query = (f"SELECT run_uuid AS run_id, key, step, CASE WHEN is_nan THEN NULL ELSE value END AS value, timestamp "
             f"FROM metrics WHERE run_uuid IN ({_marks(run_ids)}) "
             f"AND key IN ({_marks(keys)}) ORDER BY run_uuid, key, step, timestamp")
    with read_only(path) as connection:
        return pd.read_sql_query(query, connection, params=[*run_ids, *keys])


def runs_frame(path: Path | str, tags: dict[str, str], experiment: str | None = None) -> pd.DataFrame:
    """The active runs of ``experiment`` (None: every active experiment) whose tags hold all of ``tags``, one row
    each, newest first: the frame :func:`kdcore.tracking.runs_frame` gives for the same filter."""
    where = ["r.lifecycle_stage = 'active'", "e.lifecycle_stage = 'active'"]
    args: list[str] = []
    if experiment is not None:
        where.append("e.name = ?")
        args.append(experiment)
    for key, value in tags.items():
        where.append("EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?)")
        args += [key, value]
    query = (f"SELECT r.run_uuid, r.name, r.status, r.experiment_id, r.start_time, r.end_time FROM runs r "
             f"JOIN experiments e ON e.experiment_id = r.experiment_id WHERE {' AND '.join(where)} "
             f"ORDER BY r.start_time DESC, r.run_uuid")
    with read_only(path) as connection:
        runs = connection.execute(query, args).fetchall()
        rows = {run_id: {"run_id": run_id, "name": name, "status": status, "experiment_id": str(experiment_id),
                         "start_time": pd.to_datetime(start, unit="ms"),
                         "end_time": pd.to_datetime(end, unit="ms") if end else pd.NaT}
                for run_id, name, status, experiment_id, start, end in runs}
        chosen = "SELECT r.run_uuid FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id " \
                 f"WHERE {' AND '.join(where)}"
        for table, prefix, value in (("tags", "tags.", "value"), ("params", "params.", "value"),
                                     ("latest_metrics", "metrics.",
                                      "CASE WHEN is_nan THEN 'NaN' ELSE value END")):
            for run_id, key, item in connection.execute(
                    f"SELECT run_uuid, key, {value} FROM {table} WHERE run_uuid IN ({chosen})", args):
                rows[run_id][prefix + key] = float(item) if prefix == "metrics." else item
    return pd.DataFrame(list(rows.values()))

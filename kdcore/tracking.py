"""MLflow behind the :class:`~kdcore.tracker.Tracker` interface, and the readers the dashboard uses.

The only module that imports mlflow. The default store is a SQLite file, ``mlflow.db`` in the
working directory, with artifacts in ``mlartifacts/`` beside it: the same places the stock
``mlflow ui`` uses, so running it in that directory shows every study. ``MLFLOW_TRACKING_URI``
(or ``tracking.uri`` in a config) points everything at another store or a shared server.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from requests.exceptions import ConnectTimeout

from kdcore.local_store import DEFAULT_ARTIFACTS, DEFAULT_DB, resolve_uri, role_run_ids, sqlite_path
from kdcore.local_store import metric_history as sqlite_history
from kdcore.study_list import list_studies
from kdcore.tracker import STUDY_ROLE, RunRecord, Tracker, TrackingUnavailable

try:
    import fcntl
except ImportError:  # Windows has no flock: a new store is created unguarded there, as MLflow itself does
    fcntl = None  # type: ignore[assignment]

# MLflow announces every run it creates and draws a bar per artifact download; the CLI prints
# its own summary instead.
logging.getLogger("mlflow").setLevel(logging.WARNING)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _artifact_root(uri: str) -> str | None:
    """``mlartifacts/`` beside a local SQLite file; a server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / DEFAULT_ARTIFACTS).as_uri()
    return None


# --- opening a store ------------------------------------------------------------------------------
# (connect, answer) seconds: a live tracking server accepts and answers a one-row search well within these
PROBE_TIMEOUT_S = (3, 5)
HINT = "set MLFLOW_TRACKING_URI or --tracking-uri"
WRITABLE = f"{HINT} to a store in a writable folder, e.g. sqlite:////abs/path/{DEFAULT_DB}"
ELSEWHERE = f"{HINT} to another file, e.g. sqlite:////abs/path/{DEFAULT_DB}"
_QUIET_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "urllib3")  # their own lines on a failure we report
_ready: set[str] = set()  # URIs this process has opened: each is checked, and a new store created, once


def open_store(uri: str | None = None) -> str:
    """Check that the store at ``uri`` (resolved) can be used, create a new SQLite store, return the URI.

    Every reader and tracker opens its store here, so a bad URI, a folder that cannot hold the store or
    a server that does not answer is one :class:`TrackingUnavailable` line within seconds, instead of
    MLflow's tracebacks or minutes of retries. Several processes may open a new SQLite store at once:
    its tables are created under a lock.
    """
    uri = resolve_uri(uri)
    db_path = sqlite_path(uri)
    if uri in _ready and (db_path is None or db_path.exists()):
        return uri
    scheme = urlsplit(uri).scheme
    with _quiet(_QUIET_LOGGERS):
        if scheme == "sqlite":
            _open_sqlite(uri, db_path)
        elif scheme in ("http", "https"):
            _probe_server(uri)
        elif scheme in ("", "file") or len(scheme) == 1:  # a path (a one-letter scheme is a Windows drive)
            raise TrackingUnavailable(f"tracking URI {uri!r} is a path, not a sqlite:/// URI; "
                                      f"{HINT} to sqlite:///{_suggested_db(uri)}")
    _ready.add(uri)
    return uri


def _client(uri: str | None) -> MlflowClient:
    """A client on the store at ``uri``, opened (checked, created) first."""
    return MlflowClient(tracking_uri=open_store(uri))


def _suggested_db(path: str) -> Path:
    """Where a bare path (or a ``file:`` URI) most likely meant the SQLite file to be."""
    local = Path(urlsplit(path).path if path.startswith("file:") else path).expanduser().absolute()
    return local if local.suffix == ".db" else local / DEFAULT_DB


@contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Silence these loggers for a moment: a failure they would log is reported as one line instead."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _open_sqlite(uri: str, path: Path | None) -> None:
    """Check the file and its folder, then let MLflow create or check the tables under ``<file>.lock``."""
    if path is None:  # in memory: nothing to check, nobody to race with
        _build_store(uri, uri)
        return
    db = path.absolute()
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrackingUnavailable(f"cannot create the tracking store {db}: its folder cannot be created "
                                  f"({_reason(err)}); {WRITABLE}") from None
    if db.is_dir():
        raise TrackingUnavailable(f"cannot use the tracking store {db}: it is a folder; "
                                  f"{HINT} to sqlite:///{db / DEFAULT_DB}")
    if not os.access(db.parent, os.W_OK | os.X_OK):
        raise TrackingUnavailable(f"cannot use the tracking store {db}: folder {db.parent} is not writable; "
                                  f"{WRITABLE}")
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise TrackingUnavailable(f"cannot use the tracking store {db}: the file is not writable; {WRITABLE}")
    try:
        with open(db.with_name(db.name + ".lock"), "a") as lock:
            if fcntl is not None:  # MLflow creates a new store's tables in steps that must not interleave
                fcntl.flock(lock, fcntl.LOCK_EX)
            _check_sqlite(db)
            _build_store(uri, str(db))
    except OSError as err:
        raise TrackingUnavailable(f"cannot use the tracking store {db}: {_reason(err)}; {WRITABLE}") from None


def _check_sqlite(db: Path) -> None:
    """Open the file once with SQLite itself: MLflow retries a file it cannot open for minutes."""
    try:
        with closing(sqlite3.connect(db, timeout=30)) as connection:
            connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as err:  # 'file is not a database', 'unable to open database file'
        raise TrackingUnavailable(f"cannot use the tracking store {db}: {err}; {ELSEWHERE}") from None


def _build_store(uri: str, name: str) -> None:
    """Make MLflow build its store for ``uri`` (it keeps it for every later client): tables created or checked."""
    try:
        MlflowClient(tracking_uri=uri)
    except Exception as err:  # SQLAlchemy's and MLflow's own errors: the store is unusable as it is
        if "out-of-date database schema" in str(err):
            raise TrackingUnavailable(f"the tracking store {name} was made by an older MLflow; back it up, then "
                                      f"run: mlflow db upgrade {uri}") from None
        raise TrackingUnavailable(f"cannot open the tracking store {name}: {_reason(err)}") from err


def _probe_server(uri: str) -> None:
    """Ask the server for one experiment, once, briefly: MLflow itself retries for minutes before failing."""
    from mlflow.tracking._tracking_service.utils import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "POST",
                                max_retries=0, timeout=PROBE_TIMEOUT_S, raise_on_status=False,
                                json={"max_results": 1})
    except Exception as err:  # connection refused, timeout, unknown host, bad URL
        raise TrackingUnavailable(f"cannot reach the tracking server at {uri}: {_reason(err)}; {HINT}") from None
    if response.status_code in (401, 403):
        raise TrackingUnavailable(f"the tracking server at {uri} refused access (HTTP {response.status_code}); "
                                  "set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
                                  "MLFLOW_TRACKING_PASSWORD")
    if response.status_code != 200:
        raise TrackingUnavailable(f"the server at {uri} does not answer as an MLflow tracking server "
                                  f"(HTTP {response.status_code} {response.reason}); {HINT}")


def _reason(err: BaseException) -> str:
    """The innermost cause of an error, in a few words: 'connection refused', 'not a directory', ..."""
    chain = [err]
    while (inner := chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(inner)
    err = chain[-1]
    if isinstance(err, TimeoutError):
        if any(isinstance(outer, ConnectTimeout) for outer in chain):
            return f"no connection within {PROBE_TIMEOUT_S[0]} s"
        return f"no answer within {PROBE_TIMEOUT_S[1]} s"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror[0].lower() + err.strerror[1:]
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class _Writer:
    """Applies a tracker's writes in order on one background thread, so training never waits for a commit.

    A read first waits for every queued write (a tracker reads what it wrote). A write that fails is raised
    by the next call of the thread that uses the tracker; at exit, whatever is queued is written first.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held while the client is used: by the writer, or by a read
        self._queue: queue.Queue[tuple[Callable[..., object], tuple[object, ...]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        self.raise_error()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="kdx-tracking-writer", daemon=True)
            self._thread.start()
            atexit.register(self.drain)
        self._queue.put((fn, args))

    def drain(self) -> None:
        """Block until every queued write is in the store; raise the first that failed."""
        self._queue.join()
        self.raise_error()

    def raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            fn, args = self._queue.get()
            try:
                with self.lock:
                    fn(*args)
            except BaseException as err:  # kept for the tracker's user; later writes still go in
                self._error = self._error or err
            finally:
                self._queue.task_done()


class MlflowTracker(Tracker):
    """A tracker writing to one MLflow experiment.

    Writes (metrics, tags, params, artifacts, statuses) are queued and applied in order by a background
    thread; reads wait for them first, and :meth:`flush` waits for all of them (before a checkpoint, and
    before a study lets go of its lock). Metrics are also buffered per run and sent in one ``log_batch``
    at most every ``flush_seconds`` (and when the run ends): a live view lags by about a second.
    """

    def __init__(self, uri: str | None = None, experiment: str = "kd-explorer", flush_seconds: float = 1.0) -> None:
        self.uri = open_store(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self._experiment(experiment)
        self.flush_seconds = flush_seconds
        self._buffer: dict[str, list[Metric]] = {}
        self._flushed_at: dict[str, float] = {}
        self._writer = _Writer()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Every queued write applied, then the client to ourselves for a read."""
        self._writer.drain()
        with self._writer.lock:
            yield

    def _experiment(self, name: str) -> str:
        """The id of experiment ``name``: created when missing, brought back when in the trash."""
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                return self.client.create_experiment(name, _artifact_root(self.uri))
            except MlflowException:  # another process created it a moment ago: use that one
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        return found.experiment_id

    def start_run(self, name: str, tags: dict[str, str], params: dict[str, str],
                  parent_id: str | None = None) -> str:
        tags = dict(tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        with self._reading():
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self._writer.submit(self._log_batch, run_id, {"params": items[start:start + 100]})
        return run_id

    @classmethod
    def for_run(cls, run_id: str, uri: str | None = None) -> MlflowTracker:
        """A tracker on the experiment that holds ``run_id``."""
        client = _client(uri)
        experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
        return cls(uri, experiment.name)

    def set_status(self, run_id: str, status: str) -> None:
        self._writer.submit(self.client.update_run, run_id, status)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._buffer.setdefault(run_id, []).extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if time.monotonic() - self._flushed_at.get(run_id, 0.0) >= self.flush_seconds:
            self._flush(run_id)

    def flush(self, run_id: str) -> None:
        """Send the run's buffered metrics and wait until every queued write is in the store."""
        self._flush(run_id)
        self._writer.drain()

    def _flush(self, run_id: str) -> None:
        items = self._buffer.pop(run_id, [])
        for start in range(0, len(items), 1000):  # MLflow takes at most 1000 metrics per batch
            self._writer.submit(self._log_batch, run_id, {"metrics": items[start:start + 1000]})
        self._flushed_at[run_id] = time.monotonic()

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._writer.submit(self._log_batch, run_id, {"tags": [RunTag(k, str(v)) for k, v in tags.items()]})

    def _log_batch(self, run_id: str, items: dict[str, list]) -> None:
        self.client.log_batch(run_id, **items, synchronous=True)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._writer.submit(self._delete_tag, run_id, key)

    def _delete_tag(self, run_id: str, key: str) -> None:
        if key in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, key)

    def log_bytes(self, run_id: str, path: str, data: bytes) -> None:
        self._writer.submit(self._log_bytes, run_id, path, data)

    def _log_bytes(self, run_id: str, path: str, data: bytes) -> None:
        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            local.write_bytes(data)
            self.client.log_artifact(run_id, str(local), folder or None)

    def read_bytes(self, run_id: str, path: str) -> bytes:
        with self._reading():
            return _read_bytes(self.client, run_id, path)

    def register_folder(self, run_id: str, folder: Path, path: str, name: str, description: str) -> tuple[str, str]:
        """Log ``folder`` on the run under ``path`` and register it as a new version of the Model Registry's
        ``name`` (created when new), described by ``description``: (the version, its source URI)."""
        self._writer.drain()
        self.client.log_artifacts(run_id, str(folder), path)
        source = f"{self.client.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
        if not self.client.search_registered_models(filter_string=f"name = '{name}'"):
            self.client.create_registered_model(name, description=description)
        version = self.client.create_model_version(name, source=source, run_id=run_id, description=description)
        return str(version.version), source

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._flush(run_id)
        self._writer.submit(self.client.set_terminated, run_id, status)

    def get_run(self, run_id: str) -> RunRecord:
        self._flush(run_id)
        with self._reading():
            return _record(self.client.get_run(run_id))

    def find_runs(self, tags: dict[str, str], status: str | None = None) -> list[RunRecord]:
        clauses = [f"tags.`{k}` = '{_quote(v)}'" for k, v in tags.items()]
        if status:
            clauses.append(f"attributes.status = '{status}'")
        with self._reading():
            runs = _search_all(self.client, [self.experiment_id], " AND ".join(clauses))
        return [_record(run) for run in runs]

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        self._flush(run_id)
        with self._reading():
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
def runs_frame(uri: str | None, filter_string: str, experiment: str | None = None) -> pd.DataFrame:
    """Every run of ``experiment`` (None: every active experiment) matching an MLflow filter, one row each:
    run_id, name, status, experiment_id, start_time, end_time and ``tags.*``, ``params.*``, ``metrics.*``."""
    client = _client(uri)
    return _runs_frame(client, _experiment_ids(client, experiment), filter_string)


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


class StudyNotFound(ValueError):
    """A study reference that names no study, or more than one (one line)."""


def resolve_study_id(ref: str, uri: str | None = None) -> str:
    """A study's id from its full id or a unique start of it (the 8-character short id the dashboard, folders and
    summaries show); :class:`StudyNotFound` when it names none or several."""
    ref = ref.strip()
    ids = list_studies(uri)["study_id"].tolist()
    if ref in ids:
        return ref
    found = [study_id for study_id in ids if ref and study_id.startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise StudyNotFound(f"no study {ref!r} in {resolve_uri(uri)}; kdx studies lists them")
    raise StudyNotFound(f"{ref!r} starts {len(found)} study ids ({', '.join(s[:12] for s in found[:3])}"
                        f"{', ...' if len(found) > 3 else ''}); give more of the id")


def list_runs(study_ids: list[str], uri: str | None = None) -> pd.DataFrame:
    """Every role run of the given studies, with ``tags.*``, ``params.*`` and ``metrics.*`` columns."""
    if not study_ids:
        return pd.DataFrame()
    uri = open_store(uri)
    client = MlflowClient(tracking_uri=uri)
    experiments = _experiment_ids(client, None)
    if uri.startswith("sqlite:///"):
        try:  # MLflow's search has no IN for tags, but has one for run ids: find those in one query
            run_ids = role_run_ids(uri.removeprefix("sqlite:///"), list(study_ids))
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



def metric_history(run_ids: list[str], keys: list[str], uri: str | None = None) -> pd.DataFrame:
    """Long table (run_id, key, step, value, timestamp) of the given metrics, for curves."""
    uri = open_store(uri)
    if uri.startswith("sqlite:///") and run_ids and keys:
        try:
            return sqlite_history(uri.removeprefix("sqlite:///"), list(run_ids), list(keys))
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


def load_predictions(run_id: str, uri: str | None = None) -> dict[str, np.ndarray]:
    """Per-sample test and shifted-test probabilities and labels of one role run."""
    client = _client(uri)
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
    client = _client(uri)
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
    return _read_bytes(_client(uri), run_id, path)


def start_run_at(tracker: MlflowTracker, name: str, tags: dict[str, str], params: dict[str, str],
                 start_time: int) -> str:
    """Like :meth:`MlflowTracker.start_run`, but started at ``start_time`` (ms): to replay a stored run."""
    with tracker._reading():  # the client to ourselves, after the tracker's queued writes
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
        tracker._writer.submit(tracker._log_batch, run_id, {"metrics": items[start:start + 1000]})


def end_run_at(tracker: MlflowTracker, run_id: str, status: str, end_time: int | None) -> None:
    """Close a run with ``status`` at ``end_time`` (ms; None = now)."""
    with tracker._reading():
        tracker.client.set_terminated(run_id, status=status, end_time=end_time)


def delete_runs(tracker: MlflowTracker, run_ids: list[str]) -> None:
    """Move runs to the store's trash (searches no longer see them), e.g. after a failed replay."""
    with tracker._reading():
        for run_id in run_ids:
            tracker.client.delete_run(run_id)

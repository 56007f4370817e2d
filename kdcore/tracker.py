"""What a study needs from a run tracker, and an in-memory tracker for tests and dry runs.

:mod:`kdcore.tracking` implements the same interface on MLflow; nothing else imports mlflow.
"""

from __future__ import annotations

import itertools
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

STUDY_ROLE = "study"  # kd.role of a study's parent run
# What a diagnosis logs on the study (step 0), counted from its findings.json and gates.json
DIAGNOSIS_METRICS = ("study/findings", "study/gates_passed", "study/gates_failed", "study/gates_not_measurable")


def role_key(role: str) -> tuple[int, int, str]:
    """Sort key of a role in the order a study runs them: teacher, teacher_2, ..., assistant_1, assistant_2, ...
    (numerically), baseline (generation 0 of a born-again chain), generation_1, ..., student, peer_1, ..., then
    any other role by name. Tables, legends and progress lists all use it."""
    head, _, number = role.rpartition("_")
    if number.isdigit() and head in NUMBERED:
        return NUMBERED[head], int(number), ""
    return {"teacher": (0, 0, ""), "baseline": (2, 0, ""), "student": (3, 0, "")}.get(role, (5, 0, role))


NUMBERED = {"teacher": 0, "assistant": 1, "generation": 2, "peer": 4}  # numbered roles and their place in role_key


@dataclass
class RunRecord:
    """A tracked run as the core sees it."""

    run_id: str
    name: str
    status: str  # SCHEDULED | RUNNING | FINISHED | FAILED | KILLED
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of each
    start_time: int = 0  # ms since the epoch


class Tracker(ABC):
    """Runs with tags, params, per-step metrics and byte artifacts."""

    uri: str

    @abstractmethod
    def start_run(self, name: str, tags: dict[str, str], params: dict[str, str],
                  parent_id: str | None = None) -> str:
        """Create a RUNNING run (nested under ``parent_id``) and return its id."""

    @abstractmethod
    def set_status(self, run_id: str, status: str) -> None:
        """Set a run's status without ending it: SCHEDULED while queued, RUNNING to continue it."""

    @abstractmethod
    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """Log several metrics at one step in one call."""

    @abstractmethod
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    @abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None: ...

    @abstractmethod
    def log_bytes(self, run_id: str, path: str, data: bytes) -> None:
        """Store ``data`` as the artifact ``path`` of the run."""

    @abstractmethod
    def read_bytes(self, run_id: str, path: str) -> bytes:
        """The artifact ``path`` of the run; FileNotFoundError when the run has no such artifact."""

    @abstractmethod
    def flush(self, run_id: str) -> None:
        """Write the run's buffered metrics now (before a checkpoint, so curves never lag behind it)."""

    @abstractmethod
    def end_run(self, run_id: str, status: str = "FINISHED") -> None: ...

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord: ...

    @abstractmethod
    def find_runs(self, tags: dict[str, str], status: str | None = None) -> list[RunRecord]:
        """Runs whose tags match all of ``tags`` (and ``status``), newest first."""

    @abstractmethod
    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) pairs of one metric, by step."""


class MemoryTracker(Tracker):
    """Keeps everything in dictionaries; the reference behaviour for tests."""

    def __init__(self) -> None:
        self.uri = "memory://"
        self.runs: dict[str, RunRecord] = {}
        self.history: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self.artifacts: dict[tuple[str, str], bytes] = {}
        self._ids = itertools.count(1)
        self._token = secrets.token_hex(4)  # ids unique across trackers: checkpoints are kept by study id

    def start_run(self, name: str, tags: dict[str, str], params: dict[str, str],
                  parent_id: str | None = None) -> str:
        run_id = f"run{next(self._ids)}-{self._token}"
        tags = dict(tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        now = int(time.time() * 1000)
        self.runs[run_id] = RunRecord(run_id, name, "RUNNING", tags, dict(params), {}, now)
        return run_id

    def set_status(self, run_id: str, status: str) -> None:
        self.runs[run_id].status = status

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.runs[run_id].metrics[key] = float(value)
            self.history.setdefault((run_id, key), []).append((step, float(value)))

    def flush(self, run_id: str) -> None:
        """Nothing is buffered here."""

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.runs[run_id].tags.update(tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.runs[run_id].tags.pop(key, None)

    def log_bytes(self, run_id: str, path: str, data: bytes) -> None:
        self.artifacts[(run_id, path)] = data

    def read_bytes(self, run_id: str, path: str) -> bytes:
        try:
            return self.artifacts[(run_id, path)]
        except KeyError:
            raise FileNotFoundError(f"run {run_id} has no artifact {path}") from None

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.runs[run_id].status = status

    def get_run(self, run_id: str) -> RunRecord:
        return self.runs[run_id]

    def find_runs(self, tags: dict[str, str], status: str | None = None) -> list[RunRecord]:
        found = [r for r in self.runs.values()
                 if all(r.tags.get(k) == v for k, v in tags.items()) and status in (None, r.status)]
        return sorted(found, key=lambda r: (r.start_time, int(r.run_id[3:].partition("-")[0])),
                      reverse=True)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return sorted(self.history.get((run_id, key), []))


class TrackingUnavailable(Exception):
    """The tracking store cannot be used: a bad URI, a folder that cannot hold it, a server that does not
    answer. The message is one line that says what is wrong and how to point at a working store."""

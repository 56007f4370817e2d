"""A real SQLite MLflow store whose studies are damaged the ways shared stores get damaged.

Each study is made by the real code (:class:`kdcore.study.Study` over :class:`MlflowTracker`), then
damaged through the MLflow client: an artifact deleted or overwritten with garbage, a tag deleted,
NaN and infinite metrics, names made of Markdown. MLflow's client refuses tag values over 8,000
characters, so the one 100 kB name is written with SQL, as another writer of the store could.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from kdcore.study import Study
from kdcore.tracking import MlflowTracker
from tests.helpers import tiny_config

# Names as anyone with access to a shared store may write them: Markdown that would fetch a remote
# image and show a link, HTML, control characters, and one name of 100 kB.
INJECTION = "![x](http://example.invalid/a.png) [click](http://evil.invalid) **bold**"
ODD_NAME = "line one\nline two | <b>html</b> `tick` :material/home: $x^2$ www.example.invalid"
HUGE_NAME = "huge " + "x" * 100_000


@dataclass(frozen=True)
class DamagedStore:
    """The store's URI and its three damaged studies (FINISHED, each with a teacher, a baseline and a student)."""

    uri: str
    missing: str  # config.yaml deleted, and the student's run has lost its kd.role tag; named ODD_NAME
    corrupt: str  # gates.json and findings.json are not JSON, while kd.findings names a finding; named INJECTION
    odd_numbers: str  # NaN and infinite metrics on the study and on its student; named HUGE_NAME

    @property
    def ids(self) -> list[str]:
        return [self.missing, self.corrupt, self.odd_numbers]


def build_damaged_store(folder: Path) -> DamagedStore:
    """Make three tiny studies in ``folder/mlflow.db`` (the second and third reuse the first one's teacher)
    and damage each."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "kd-explorer")
    store = DamagedStore(uri, *(Study(tiny_config(f"tracking.study_name=damaged {k}"), tracker, progress=False)
                                .run().study_id for k in range(3)))
    client = MlflowClient(tracking_uri=uri)

    def child(study_id: str, role: str) -> str:
        found = client.search_runs([client.get_run(study_id).info.experiment_id],
                                   f"tags.`kd.study_id` = '{study_id}' AND tags.`kd.role` = '{role}'")
        return found[0].info.run_id

    get_artifact_repository(client.get_run(store.missing).info.artifact_uri).delete_artifacts("config.yaml")
    client.delete_tag(child(store.missing, "student"), "kd.role")
    client.set_tag(store.missing, "mlflow.runName", ODD_NAME)

    client.log_text(store.corrupt, '[{"number": 1, "name": "cut off', "gates.json")
    client.log_text(store.corrupt, "{not json", "findings.json")
    client.set_tag(store.corrupt, "kd.findings", "overconfidence")
    client.set_tag(store.corrupt, "mlflow.runName", INJECTION)

    client.log_metric(store.odd_numbers, "study/student_acc", float("nan"), step=1)
    client.log_metric(store.odd_numbers, "study/acc_ratio_teacher", float("inf"), step=1)
    client.log_metric(store.odd_numbers, "study/acc_ratio_baseline", float("-inf"), step=1)
    student = child(store.odd_numbers, "student")
    client.log_metric(student, "test/acc", float("nan"), step=1)
    client.log_metric(student, "model/params", float("inf"), step=1)
    client.log_metric(student, "val/acc", float("inf"), step=5)
    with closing(sqlite3.connect(folder / "mlflow.db")) as db, db:
        db.execute("UPDATE runs SET name = ? WHERE run_uuid = ?", (HUGE_NAME, store.odd_numbers))
        db.execute("UPDATE tags SET value = ? WHERE run_uuid = ? AND key = 'mlflow.runName'",
                   (HUGE_NAME, store.odd_numbers))
    return store

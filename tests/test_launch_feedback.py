"""Launch under AppTest: the study just launched shows at the top of the page, live while it trains, then
with its key numbers, findings, gates and a link to Study detail, or with its error."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kdcore import launcher
from tests.helpers import tiny_config
from tests.test_dashboard import open_page

WAIT = 180  # a tiny study, in its own process, on a busy machine


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty store and jobs folder of its own; any job still going at the end is cancelled."""
    monkeypatch.chdir(tmp_path)
    found = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", found)
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    yield found
    for job in launcher.list_jobs():
        launcher.cancel(job.job_id)


def order(at: AppTest) -> list[str]:
    """What the main area shows, top to bottom: each element's key, else its label, else its text (an alert's
    text after "alert:")."""
    return [str(getattr(node, "key", None) or getattr(node, "label", None)
                or ("alert:" if node.type in {"error", "warning"} else "") + str(getattr(node, "value", "")))
            for node in at.main]


def headline(at: AppTest) -> str:
    return next(h.value for h in at.subheader if h.value.startswith("Launched: "))


def status(at: AppTest) -> str:
    """The status line under the launched study's name."""
    shown = order(at)
    return shown[shown.index(headline(at)) + 1]


def test_a_launched_study_shows_at_the_top_then_its_results_and_a_link_to_it(uri: str) -> None:
    at = open_page("launch", launch_config=tiny_config("tracking.study_name=launched here").to_dict())
    at.selectbox(key="device").set_value("cpu").run()
    assert not any(h.value.startswith("Launched: ") for h in at.subheader)
    next(b for b in at.button if b.label == "Launch").click().run()
    assert not at.exception, at.exception
    (job,) = launcher.list_jobs()
    assert at.session_state["launched_job"] == job.job_id
    shown = order(at)
    assert shown.index(headline(at)) < shown.index("launch-example")  # above the example picker and the form
    assert "launched here" in headline(at)
    assert any("Follow it at the top of the page" in m.value for m in at.markdown)  # beside the button

    job = launcher.wait(job.job_id, timeout=WAIT)
    assert job.status == "finished", job.message
    at.run()
    assert not at.exception, at.exception
    assert "`FINISHED`" in status(at) and job.study_id in status(at)
    metrics = {m.label: m.value for m in at.metric}
    assert re.fullmatch(r"\d{1,3}\.\d%", metrics["Student accuracy"])
    assert re.fullmatch(r"\d\.\d\d", metrics["Student / teacher"])
    assert re.fullmatch(r"\d\.\d\d", metrics["Student / baseline"])
    assert re.fullmatch(r"\d+", metrics["Findings"])
    assert re.fullmatch(r"\d+ of 10", metrics["Quality gates passed"])
    (link,) = [p for p in at.page_link if p.value == "Open in Study detail"]
    assert link.proto.query_string == f"id={job.study_id}"
    shown = order(at)
    assert shown.index(headline(at)) < shown.index("Student accuracy") < shown.index("launch-example")

    at.query_params["id"] = job.study_id  # following the link
    at.switch_page("views/study.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="study").value == job.study_id


def test_a_failed_launch_shows_its_error_at_the_top(uri: str, tmp_path: Path) -> None:
    folder = tmp_path / "jobs" / "20260101-000000-abcdef"
    folder.mkdir(parents=True)
    job = launcher.Job(folder.name, folder, "failed", created=time.time(), name="doomed study",
                       message="ValueError: data.path: no file or folder 'gone.csv'")
    (folder / "job.json").write_text(json.dumps({k: v for k, v in asdict(job).items() if k != "dir"}))
    at = open_page("launch", launched_job=job.job_id)
    assert "doomed study" in headline(at) and "`FAILED`" in status(at)
    top = order(at)[:order(at).index("launch-example")]  # not only in the queue below
    assert any(node.startswith("alert:") and "no file or folder" in node for node in top)
    assert not [p for p in at.page_link if p.value == "Open in Study detail"]
    at.button(key="launched-hide").click().run()
    assert not any(h.value.startswith("Launched: ") for h in at.subheader)

"""The Sweep editor on Launch under AppTest: the study count and the one-line errors, shown before anything runs;
the time estimate from past studies of the same config; the two files "Launch sweep" writes (the same ones the
download buttons offer), which ``kdx sweep`` accepts; and the launched sweep at the top of the page, with its
studies finished and a link to Sweep."""

from __future__ import annotations

import fcntl
import json
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from dashboard.sweep_editor import duration
from kdcore import launcher
from kdcore.config import load_config
from kdcore.study import Study
from kdcore.sweep_spec import count, expand, load_sweep
from kdcore.tracking import MlflowTracker
from tests import test_launch_feedback
from tests.helpers import sweep_store, tiny_config
from tests.test_dashboard import open_page
from tests.test_launch_feedback import WAIT, headline, status

uri = test_launch_feedback.uri  # the fixture: an empty store and jobs folder of the test's own
TEMPERATURE = "distill.temperature"


def editor(**state: Any) -> AppTest:
    """Launch on the tiny study, on the CPU."""
    at = open_page("launch", launch_config=tiny_config().to_dict(), **state)
    return at.selectbox(key="device").set_value("cpu").run()


def vary(at: AppTest, grid: dict[str, str], seeds: str = "0, 1, 2") -> AppTest:
    """Vary each field of ``grid`` over its comma-separated values, with ``seeds``."""
    at.multiselect(key="sweep-fields").set_value(list(grid)).run()
    for field, values in grid.items():
        at.text_input(key=f"sweep.{field}.grid").set_value(values)
    at.text_input(key="sweep-seeds").set_value(seeds)
    return at.run()


def studies(at: AppTest) -> str:
    """The editor's line under the fields: the study count and the estimate."""
    return next(m.value for m in at.markdown if m.value.startswith("**") and " studies.**" in m.value)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def job_record(status: str, study_id: str | None = None, name: str = "a sweep", message: str = "") -> launcher.Job:
    """A sweep job as the launcher writes it, in the jobs folder of the test ($KDX_JOBS_DIR)."""
    folder = launcher.jobs_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 16**6:06x}"
    folder.mkdir(parents=True)
    job = launcher.Job(folder.name, folder, status, study_id=study_id, created=time.time(), name=name,
                       message=message, kind="sweep")
    (folder / "job.json").write_text(json.dumps({k: v for k, v in asdict(job).items() if k != "dir"}))
    return job


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """``launcher.launch_sweep`` replaced: each call is recorded and answered with a queued job whose process
    seems alive (this test holds its ``alive.lock``); nothing runs."""
    calls: list[dict[str, Any]] = []
    held: list[int] = []

    def launch_sweep(sweep_file: Path, args: list[str], *, name: str, tracking_uri: str | None = None,
                     **rest: Any) -> launcher.Job:
        calls.append({"sweep_file": Path(sweep_file), "args": args, "name": name, "tracking_uri": tracking_uri})
        job = job_record("queued", name=name)
        held.append(os.open(job.dir / "alive.lock", os.O_RDWR | os.O_CREAT))
        fcntl.flock(held[-1], fcntl.LOCK_EX)
        return job

    monkeypatch.setattr(launcher, "launch_sweep", launch_sweep)
    yield calls
    for fd in held:
        os.close(fd)


def test_the_count_follows_the_fields_the_seeds_and_the_random_points(uri: str) -> None:
    at = editor()
    assert any("Pick the fields to vary" in c.value for c in at.caption)
    vary(at, {TEMPERATURE: "1, 2, 4"})
    assert studies(at).startswith("**9 studies.**")
    vary(at, {TEMPERATURE: "1, 2, 4", "distill.alpha": "0.5, 0.9"}, seeds="0, 1")
    assert studies(at).startswith("**12 studies.**")  # 3 x 2 points, 2 seeds
    at.radio(key="sweep.distill.alpha.mode").set_value("random").run()
    at.number_input(key="sweep.distill.alpha.low").set_value(0.1)
    at.number_input(key="sweep.distill.alpha.high").set_value(0.9)
    at.number_input(key="sweep-samples").set_value(5).run()
    assert studies(at).startswith("**16 studies.**")  # 3 grid points then 5 random ones, 2 seeds
    assert any("not crossed" in c.value for c in at.caption)
    assert not errors(at) and not at.button(key="sweep-launch").disabled


def test_a_bad_value_an_empty_grid_and_too_many_studies_are_named_before_launch(uri: str) -> None:
    at = vary(editor(), {TEMPERATURE: "1, 0"})
    assert errors(at) == ["grid.distill.temperature: 0 fails validation: distill.temperature: Input should be "
                          "greater than 0 (got 0)"]
    assert at.button(key="sweep-launch").disabled
    assert not [m for m in at.markdown if " studies.**" in m.value]
    vary(at, {TEMPERATURE: ""})
    assert errors(at) == ["grid.distill.temperature: empty list; give at least one value"]
    vary(at, {TEMPERATURE: "1, 2, 4"}, seeds="0, zero")
    assert errors(at)[0].startswith("seeds.1: ")
    vary(at, {TEMPERATURE: "1, 2, 4"})
    at.number_input(key="sweep-max").set_value(5).run()
    assert errors(at) == ["sweep: 9 studies, more than max_studies 5; raise max_studies or trim an axis"]
    assert at.button(key="sweep-launch").disabled
    at.number_input(key="sweep-max").set_value(9).run()
    assert not errors(at) and studies(at).startswith("**9 studies.**")


def test_without_past_studies_of_this_config_there_is_no_estimate(uri: str) -> None:
    at = vary(editor(), {TEMPERATURE: "1, 4"})
    assert studies(at) == "**6 studies.** No past study of this config to estimate from."


def test_the_estimate_is_the_median_time_of_finished_studies_of_the_same_config(uri: str) -> None:
    tracker = MlflowTracker(uri, "kd-explorer")
    same = [Study(tiny_config(f"train.seed={seed}"), tracker, progress=False).run() for seed in (0, 1)]
    Study(tiny_config("train.epochs=2"), tracker, progress=False).run()  # other epochs: not the same config
    median = statistics.median(s.metrics["study/wall_s"] for s in same)
    at = vary(editor(), {TEMPERATURE: "1, 4"})
    assert studies(at) == (f"**6 studies.** About {duration(6 * median)}: 6 × {duration(median)}, the median of 2 "
                           "past studies of digits mlp-w32-d1 → mlp-w8-d1, 1 epochs (less where studies share a "
                           "teacher).")


def test_launch_sweep_writes_the_downloaded_files_and_kdx_sweep_accepts_them(
        uri: str, launches: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    offered: dict[str, str] = {}
    real = DeltaGenerator.download_button

    def download_button(self: DeltaGenerator, label: str, data: str, **kwargs: Any) -> bool:
        offered[kwargs["file_name"]] = data
        return real(self, label, data, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", download_button)
    at = vary(editor(), {TEMPERATURE: "1, 4"}, seeds="0, 1")
    at.button(key="sweep-launch").click().run()
    assert not at.exception, at.exception
    (call,) = launches
    folder = call["sweep_file"].parent
    assert folder.parent == launcher.jobs_root() / "sweeps" and call["sweep_file"].name == "sweep.yaml"
    assert call["args"] == [] and call["name"] == "digits kd sweep" and call["tracking_uri"] == uri
    assert {p.name: p.read_text() for p in folder.iterdir()} == offered  # what a user downloads runs the same
    spec = load_sweep(call["sweep_file"])
    assert spec.grid == {TEMPERATURE: [1, 4]} and spec.seeds == [0, 1] and count(spec) == 4
    assert spec.base == folder / "base.yaml"
    assert load_config(spec.base) == tiny_config("train.device=cpu")  # the study a plain launch would run
    assert [p.config.distill.temperature for p in expand(spec)] == [1, 1, 4, 4]

    assert "a sweep" not in headline(at) and call["name"] in headline(at)  # the launched box, at the top
    assert "`QUEUED`" in status(at) and "waiting for its sweep id" in status(at)
    assert any(c.value == "Waiting for a free slot." for c in at.caption)
    assert at.session_state["launched_sweep_studies"] == {at.session_state["launched_job"]: 4}


def test_a_combination_that_fails_is_named_at_launch_and_nothing_is_queued(uri: str,
                                                                           launches: list[dict[str, Any]]) -> None:
    """Each value passes alone (on the study's own data), so only the whole points show it: at launch."""
    at = editor()
    at.multiselect(key="sweep-fields").set_value(["data.name", "student.name"]).run()
    at.multiselect(key="sweep.data.name.values").set_value(["digits", "mnist1d"])
    at.multiselect(key="sweep.student.name.values").set_value(["mlp", "cnn2d"])
    at.text_input(key="sweep-seeds").set_value("0").run()
    assert studies(at).startswith("**4 studies.**") and not errors(at)
    at.button(key="sweep-launch").click().run()
    assert errors(at) == ["sweep: point p03 (data.name=mnist1d, student.name=cnn2d · seed 0) fails validation: "
                          "student.name: model cnn2d needs 3-d inputs but dataset mnist1d gives shape (1, 40); "
                          "allowed: cnn1d, mlp"]
    assert launches == [] and "launched_job" not in at.session_state
    assert not (launcher.jobs_root() / "sweeps").exists()


def test_a_finished_sweep_shows_its_studies_finished_and_links_to_it(tmp_path_factory: pytest.TempPathFactory,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = sweep_store(tmp_path_factory)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    sweep_id = store.ids["grid"]
    job = job_record("finished", sweep_id, "grid")
    at = open_page("launch", launched_job=job.job_id, launched_sweep_studies={job.job_id: 8})
    assert "`FINISHED`" in status(at) and sweep_id in status(at)
    assert [p.text for p in at.get("progress")] == ["8 of 8 studies finished"]
    (link,) = [p for p in at.page_link if p.label == "Open in Sweep"]
    assert link.proto.query_string == f"sweep={sweep_id[:8]}"

    at.query_params["sweep"] = sweep_id[:8]  # following the link
    at.switch_page("views/sweep.py").run()
    assert not at.exception, at.exception


def test_a_sweep_launched_from_the_editor_runs_its_studies(uri: str) -> None:
    """One real sweep of two tiny studies, through the launcher and ``kdx sweep``."""
    at = vary(editor(), {TEMPERATURE: "1, 4"}, seeds="0")
    at.button(key="sweep-launch").click().run()
    (job,) = launcher.list_jobs()
    assert job.kind == "sweep"
    job = launcher.wait(job.job_id, timeout=WAIT)
    assert job.status == "finished", job.message
    at.run()
    assert not at.exception, at.exception
    assert "`FINISHED`" in status(at)
    assert [p.text for p in at.get("progress")] == ["2 of 2 studies finished"]
    assert [p.label for p in at.page_link if p.proto.query_string == f"sweep={job.study_id[:8]}"] == ["Open in Sweep"]

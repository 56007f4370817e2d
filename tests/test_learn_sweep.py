"""Learn -> Temperature under AppTest: "Sweep it" launches the lesson's sweep file, the page follows it, and a
finished temperature sweep answers "does temperature matter here?": each temperature's student - baseline gain with
its 95% interval and verdict, and the best temperature against the worst, paired by seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from kdcore import launcher
from kdcore.seed_stats import compare, paired_difference
from kdcore.sweep import SweepResult, run_sweep
from kdcore.sweep_spec import count, expand, load_sweep
from kdcore.tracking import MlflowTracker
from tests import test_launch_sweep
from tests.test_dashboard import as_read
from tests.test_launch_sweep import job_record
from tests.test_learn import open_page
from tests.test_sweep import GRID, write_sweep

launches = test_launch_sweep.launches  # the fixture: launch_sweep recorded, nothing run

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "examples" / "sweep_lesson_temperature.yaml"
NAME = load_sweep(LESSON).name


@pytest.fixture(scope="module")
def lesson_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, SweepResult]:
    """A tiny finished sweep named as the lesson's: temperatures 2 and 4 over seeds 0, 1 and 2 (6 tiny studies)."""
    folder = tmp_path_factory.mktemp("lesson")
    path = write_sweep(folder, GRID.replace("name: tiny", f"name: {NAME}").replace("[0, 1]", "[0, 1, 2]"))
    spec = load_sweep(path)
    tracker = MlflowTracker(f"sqlite:///{folder / 'mlflow.db'}")
    return tracker.uri, run_sweep(spec, expand(spec), tracker, path.read_text(), echo=lambda line: None)


def by_temperature(result: SweepResult) -> dict[float, dict[int, tuple[float, float]]]:
    """Temperature -> seed -> (student, baseline) test accuracy, from the sweep's outcomes."""
    found: dict[float, dict[int, tuple[float, float]]] = {}
    for o in result.outcomes:
        found.setdefault(o.point.values["distill.temperature"], {})[o.point.seed] = (o.student_acc, o.baseline_acc)
    return found


def test_the_lesson_sweep_is_a_temperature_grid_on_digits_over_three_seeds() -> None:
    spec = load_sweep(LESSON)
    assert spec.base == ROOT / "examples" / "digits_kd.yaml" and spec.seeds == [0, 1, 2]
    assert list(spec.axes()) == ["grid"] and list(spec.grid) == ["distill.temperature"]
    assert count(spec) == len(expand(spec)) == 3 * len(spec.grid["distill.temperature"])


def test_on_a_store_without_a_temperature_sweep_the_page_offers_one(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    at = open_page("learn_soft_labels", f"sqlite:///{tmp_path / 'empty.db'}", monkeypatch, tmp_path)
    assert any("No temperature sweep in this store yet" in c.value for c in at.caption)
    assert at.button(key="learn-t-sweep").label == "Sweep it" and not at.dataframe


def test_sweep_it_launches_the_lesson_sweep_and_follows_it(lesson_sweep: tuple[str, SweepResult],
                                                           launches: list[dict[str, Any]],
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    uri, result = lesson_sweep
    at = open_page("learn_soft_labels", uri, monkeypatch, tmp_path)
    at.button(key="learn-t-sweep").click().run()
    assert not at.exception, at.exception
    assert launches == [{"sweep_file": LESSON, "args": [], "name": NAME, "tracking_uri": uri}]
    assert any(c.value.startswith("Waiting for a free slot") for c in at.caption)
    assert not at.dataframe  # the answer waits for this sweep
    launcher._update(launcher.jobs_root() / at.session_state["learn-t-sweep-job"], status="running",
                     study_id=result.sweep_id)  # its process has started the sweep (6 studies finished here)
    at.run()
    assert [p.text for p in at.get("progress")] == [f"6 of {count(load_sweep(LESSON))} studies finished"]


def test_a_finished_temperature_sweep_answers_with_intervals_and_best_against_worst(
        lesson_sweep: tuple[str, SweepResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    uri, result = lesson_sweep
    at = open_page("learn_soft_labels", uri, monkeypatch, tmp_path)  # found in the store by its name
    (table,) = (frame.value for frame in at.dataframe)
    seeds = by_temperature(result)
    assert list(table["T"]) == ["2", "4"] and list(table["seeds"]) == [3, 3]
    for _, row in table.iterrows():
        diff = paired_difference(*zip(*seeds[float(row["T"])].values(), strict=True))
        assert row["student − baseline"] == pytest.approx(100 * diff.mean)
        assert row["95% interval"] == f"[{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
        assert row["verdict"] == diff.verdict
    gains = {t: paired_difference(*zip(*found.values(), strict=True)).mean for t, found in seeds.items()}
    best, worst = max(gains, key=gains.get), min(gains, key=gains.get)
    diff = compare({s: a for s, (a, _) in seeds[best].items()}, {s: a for s, (a, _) in seeds[worst].items()})
    (said,) = [*at.success, *at.info]
    assert f"T = {best:g} against T = {worst:g}, the best and the worst temperature: {diff.describe()}." in said.value
    assert said.value.startswith("**Yes, here:**" if diff.verdict == "helps" else "**Cannot tell with 3 seeds")
    (link,) = [p for p in at.page_link if p.label == "Open in Sweep"]
    assert link.proto.query_string == f"sweep={result.sweep_id[:8]}"


def test_the_sweep_launched_here_answers_once_it_has_finished_or_says_why_it_failed(
        lesson_sweep: tuple[str, SweepResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    uri, result = lesson_sweep
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    failed = job_record("failed", name=NAME, message="RuntimeError: out of disk")
    at = open_at(uri, monkeypatch, tmp_path, failed.job_id)
    assert [as_read(e.value) for e in at.error] == ["RuntimeError: out of disk"]
    finished = job_record("finished", result.sweep_id, NAME)
    at = open_at(uri, monkeypatch, tmp_path, finished.job_id)
    assert not at.error and [len(frame.value) for frame in at.dataframe] == [2]
    assert any(c.value.startswith("From the sweep") and f"({result.sweep_id[:8]}): 6 of 6 studies finished" in c.value
               for c in at.caption)


def open_at(uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, job_id: str) -> AppTest:
    """The Temperature page in a session that launched the sweep job ``job_id``."""
    at = open_page("learn_soft_labels", uri, monkeypatch, tmp_path)
    at.session_state["learn-t-sweep-job"] = job_id
    return at.run()


@pytest.fixture(scope="module")
def teacher_seeds(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The digits KD samples at T 4 over seeds 0, 1, 2, and T 8 at seed 0 alone."""
    import shutil

    from kdcore.samples import load_samples

    folder = tmp_path_factory.mktemp("teachers")
    for name in ("t4-seed0", "t4-seed1", "t4-seed2", "t8-seed0"):
        shutil.copy(ROOT / "sample_runs" / f"digits-cnn2d-mlp-kd-{name}.json", folder)
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    assert load_samples(folder, uri) == 4
    return uri


def test_the_teachers_numbers_come_over_its_seeds_or_say_they_are_one_teachers(
        teacher_seeds: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kdcore.tracking import list_studies

    at = open_page("learn_soft_labels", teacher_seeds, monkeypatch, tmp_path)
    over = next(c.value for c in at.caption if c.value.startswith(("Over the teachers", "These are one")))
    assert over.startswith("Over the teachers of this study's 3 seeds, at T = 4: dark knowledge ")
    assert " ± " in over and "pts" in over
    studies = list_studies(teacher_seeds)
    alone = studies.loc[studies["name"].str.contains("T8"), "study_id"].iloc[0]
    at.selectbox(key="learn-t-study").set_value(alone).run()
    assert any(c.value.startswith("These are one teacher's numbers (one seed, so no interval)") for c in at.caption)

"""The Learn pages under AppTest: on an empty store they say what is missing; over the samples they teach."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import lesson_charts
from dashboard.lessons import FAILURE_MODES
from kdcore import launcher
from kdcore.samples import load_samples

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SAMPLES = Path(__file__).resolve().parents[1] / "sample_runs"
PAGES = ["learn_soft_labels", "learn_gap", "learn_tree_walk", "learn_failure_modes", "learn_quality_gates"]


# The samples the Learn pages read (the whole set loads in tests/test_samples.py): the digits and MNIST-1D
# pairs, the width sweep, every failure mode provoked and fixed, and worked example 2.
TAUGHT = ("digits-cnn2d-mlp-kd-", "mnist1d-cnn1d-mlp-", "provoked-", "fixed-", "worked-example-2-")


@pytest.fixture(scope="module")
def samples_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("taught")
    for path in SAMPLES.glob("*.json"):
        if path.name.startswith(TAUGHT):
            shutil.copy(path, folder / path.name)
    uri = f"sqlite:///{tmp_path_factory.mktemp('learn') / 'mlflow.db'}"
    assert load_samples(folder, uri) == len(list(folder.glob("*.json"))) >= 20
    return uri


def open_page(page: str, uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGES)
def test_each_learn_page_says_what_is_missing_on_an_empty_store(page: str, monkeypatch, tmp_path: Path) -> None:
    at = open_page(page, f"sqlite:///{tmp_path / 'empty.db'}", monkeypatch, tmp_path)
    if page != "learn_tree_walk":  # the tree needs no study
        assert any("kdx samples load" in i.value for i in at.info)


def test_temperature_spreads_the_dark_knowledge_and_run_it_queues_a_study(samples_store, monkeypatch,
                                                                          tmp_path: Path) -> None:
    at = open_page("learn_soft_labels", samples_store, monkeypatch, tmp_path)
    dark = {}
    for temperature in (1.0, 4.0, 20.0):
        at.slider(key="learn-t-temperature").set_value(temperature).run()
        dark[temperature] = float(next(m.value for m in at.metric if m.label.startswith("Dark knowledge"))
                                  .rstrip("%"))
    assert dark[1.0] < dark[4.0] < dark[20.0]
    next(b for b in at.button if b.label.startswith("Run it")).click().run()
    assert any(s.value.startswith("Queued") for s in at.success)
    jobs = launcher.list_jobs(tmp_path / "jobs")
    assert len(jobs) == 1 and jobs[0].name == "learn - digits kd T20 seed0"
    launcher.cancel(jobs[0].job_id, tmp_path / "jobs")


def test_capacity_gap_places_every_three_role_study_in_the_zones(samples_store, monkeypatch, tmp_path) -> None:
    at = open_page("learn_gap", samples_store, monkeypatch, tmp_path)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    zones = next(f for f in figures if f["layout"]["title"]["text"].startswith("Capacity gap"))
    texts = {s.get("annotation_text") or "" for s in zones["layout"].get("shapes", [])} | {
        a.get("text", "") for a in zones["layout"].get("annotations", [])}
    assert {"direct", "one assistant", "several assistants"} <= texts
    counted = next(c.value for c in at.caption if c.value.split()[0].isdigit())
    assert int(counted.split()[0]) >= 15  # the samples with a teacher, a baseline and a student


def test_a_tree_preset_lands_on_the_advisor_with_its_situation(samples_store, monkeypatch, tmp_path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    at = open_page("learn_tree_walk", samples_store, monkeypatch, tmp_path)
    assert any("cross_modal" in m.value for m in at.markdown)
    at.button(key="learn-tree-4").click().run()  # the RGB teacher and the depth student
    assert not at.exception
    assert "default value but also had its value set" not in caplog.text  # each widget's value set one way
    assert at.session_state["adv.dataset"] == "rgbd_scenes" and at.session_state["adv.student.modality"] == "depth"
    assert any("cross_modal" in m.value for m in at.markdown)


# On how many of the three seeds each fix leaves no finding, in the shipped samples: what the page's text and
# docs/workshop.md say. A remade sample that changes one of these must change that text too.
CLEARED = {
    "capacity_mismatch": {"Provoked": 0, "The finding's fix: one teacher assistant": 0,
                          "Labels first: alpha 0.1": 2},
    "knowledge_confusion": {"Provoked": 0, "The finding's fix: outputs + relations (multi)": 0,
                            "A student that can represent it: a small 1-d CNN": 3},
    "overconfidence": {"Provoked": 0, "The finding's fix: T 16, label smoothing 0.1, alpha 0.2": 3,
                       "The survey's fixes alone: T 16 and label smoothing 0.1": 0},
    "cross_modal_failure": {"Provoked": 0, "The finding's fix: align on paired samples": 3},
    "progressive_degradation": {"Provoked": 0, "The finding's fix: drop assistant 1, three assistants per stage": 0,
                                "Skip connections to the teacher": 0, "No chain: distil directly": 1},
}


def test_failure_modes_show_each_mode_over_three_seeds_with_the_fixes_that_clear_it(samples_store, monkeypatch,
                                                                                     tmp_path) -> None:
    at = open_page("learn_failure_modes", samples_store, monkeypatch, tmp_path)
    assert len(at.tabs) == 5 and not at.info
    tables = [frame.value for frame in at.dataframe]
    assert [list(table.columns) for table in tables] == [
        ["seed 0", "seed 1", "seed 2", "no finding"]] * len(FAILURE_MODES)
    for table, (code, cleared) in zip(tables, CLEARED.items(), strict=True):
        assert table["no finding"].to_dict() == {row: f"{n} of 3" for row, n in cleared.items()}, code
        assert table.loc["Provoked", "seed 0"].startswith(code)  # each provoked seed names its own mode
    alerts = " ".join(e.value for e in [*at.error, *at.warning])
    for code in FAILURE_MODES:
        assert f"`{code}`" in alerts
    # Seed 0 beside its fix: choosing another fix shows that study's verdict.
    shown = {m.value for m in at.markdown if m.value.startswith("*fixed progressive_degradation")}
    at.radio(key="learn-fix-progressive_degradation").set_value("No chain: distil directly").run()
    now = {m.value for m in at.markdown if m.value.startswith("*fixed progressive_degradation")}
    assert now == {"*fixed progressive_degradation - direct seed0*"} and now != shown


def test_quality_gates_walk_all_ten_on_a_real_study(samples_store, monkeypatch, tmp_path) -> None:
    at = open_page("learn_quality_gates", samples_store, monkeypatch, tmp_path)
    gates = [m.value for m in at.markdown if m.value.startswith((":material/check_circle:", ":material/cancel:",
                                                                ":material/help:"))]
    assert len(gates) == 10 and "Gate 1:" in gates[0]
    assert at.selectbox(key="learn-gates-study").format_func(at.selectbox(key="learn-gates-study").value) \
        .startswith("worked example 2")


def test_workshop_mode_opens_on_learn(samples_store, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KDX_WORKSHOP", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", samples_store)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception and at.title[0].value == "Temperature and soft labels"


def test_learn_charts_are_pure() -> None:
    bars = lesson_charts.soft_labels(np.array([0.7, 0.2, 0.1]), 0, 4)
    assert bars.data[0].marker.color[0] != bars.data[0].marker.color[1]
    zones = lesson_charts.gap_zones(pd.DataFrame({"ratio": [1.2, 4.0], "gain": [1.0, -3.0], "label": ["a", "b"]}),
                             [(0, 1.1, "similar"), (1.1, 1.5, "direct"), (1.5, float("inf"), "assistants")])
    assert len(zones.layout.shapes) >= 3 and list(zones.data[0].y) == [1.0, -3.0]
    assert lesson_charts.size_against_accuracy(pd.DataFrame()).layout.title.text == "Student size against accuracy"

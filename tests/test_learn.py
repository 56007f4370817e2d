"""The Learn pages under AppTest: on an empty store they say what is missing; over the samples they teach."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import lesson_charts, lessons
from dashboard.lessons import FAILURE_MODES
from dashboard.text import WORD_JOINER
from kdcore import launcher, tracking
from kdcore.samples import load_samples
from kdcore.seed_stats import paired_difference

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


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def test_temperature_spreads_the_dark_knowledge_and_run_it_queues_a_study(samples_store, monkeypatch,
                                                                          tmp_path: Path) -> None:
    at = open_page("learn_soft_labels", samples_store, monkeypatch, tmp_path)
    dark = {}
    for temperature in (1.0, 4.0, 20.0):
        at.slider(key="learn-t-temperature").set_value(temperature).run()
        dark[temperature] = float(metric(at, "Dark knowledge: this example").rstrip("%"))
    assert dark[1.0] < dark[4.0] < dark[20.0]
    next(b for b in at.button if b.label.startswith("Run it")).click().run()
    assert any(s.value.startswith("Queued") for s in at.success)
    jobs = launcher.list_jobs(tmp_path / "jobs")
    assert len(jobs) == 1 and jobs[0].name == "learn - digits kd T20 seed0"
    launcher.cancel(jobs[0].job_id, tmp_path / "jobs")


def test_temperature_shows_the_whole_split_as_text_beside_the_example(samples_store, monkeypatch,
                                                                       tmp_path: Path) -> None:
    """The split's mean dark knowledge and entropy at the chosen T are on the page as text, as the guide quotes
    them, and move with T."""
    at = open_page("learn_soft_labels", samples_store, monkeypatch, tmp_path)
    shown = {}
    for temperature in (1.0, 4.0, 20.0):
        at.slider(key="learn-t-temperature").set_value(temperature).run()
        shown[temperature] = (metric(at, "Dark knowledge: test-split mean"), metric(at, "Entropy: test-split mean"))
    assert shown == {1.0: ("7.6%", "0.29 nats"), 4.0: ("63.7%", "1.99 nats"), 20.0: ("86.5%", "2.29 nats")}
    assert any(m.label == "Dark knowledge: test-split mean (270)" for m in at.metric)


def plotly_array(value: object) -> np.ndarray:
    """An array of a figure's JSON: a list, or plotly's typed array (dtype, base64 bytes, shape)."""
    if not isinstance(value, dict):
        return np.array(value)
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])


def test_temperature_draws_the_example_beside_its_soft_labels(samples_store, monkeypatch, tmp_path: Path) -> None:
    at = open_page("learn_soft_labels", samples_store, monkeypatch, tmp_path)
    pictures = []
    for example in (0, 3):
        at.slider(key="learn-t-example").set_value(example).run()
        chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                     if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Test example"))
        assert chart["data"][0]["type"] == "heatmap" and chart["layout"]["yaxis"]["scaleanchor"] == "x"
        pictures.append(plotly_array(chart["data"][0]["z"]))
    assert pictures[0].shape == pictures[1].shape == (8, 8) and not np.array_equal(*pictures)
    assert any(c.value.startswith("Apart from class 3, the teacher finds it closest to class") for c in at.caption)


def test_a_temperature_change_reruns_only_the_lesson_and_computes_the_split_once(samples_store, monkeypatch,
                                                                                 tmp_path: Path) -> None:
    """The sliders live in a fragment (a change reruns only it, not the store reads above it), and the split's
    numbers at every temperature are computed once per teacher (the study's and those of its two other seeds,
    which the page gives the numbers over), not once per change."""
    fragments: list[str] = []
    real_fragment = st.fragment

    def recording_fragment(func=None, **options):
        fragments.append(func.__name__)
        return real_fragment(func, **options)

    calls = {"split": 0, "predictions": 0}
    split, load = lessons.split_by_temperature, tracking.load_predictions

    def counted_split(*args, **kwargs):
        calls["split"] += 1
        return split(*args, **kwargs)

    def counted_load(*args, **kwargs):
        calls["predictions"] += 1
        return load(*args, **kwargs)

    monkeypatch.setattr(st, "fragment", recording_fragment)
    monkeypatch.setattr(lessons, "split_by_temperature", counted_split)
    monkeypatch.setattr(tracking, "load_predictions", counted_load)
    st.cache_data.clear()
    at = open_page("learn_soft_labels", samples_store, monkeypatch, tmp_path)
    for temperature in (1.0, 2.5, 8.0, 20.0):
        at.slider(key="learn-t-temperature").set_value(temperature).run()
    assert calls == {"split": 3, "predictions": 3}
    assert "temperature_lesson" in fragments


def gap_chart(at: AppTest) -> dict:
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(f for f in figures if f["layout"]["title"]["text"].startswith("Capacity gap"))


def gap_count(at: AppTest) -> int:
    return int(next(c.value for c in at.caption if c.value.split()[0].isdigit()).split()[0])


def test_capacity_gap_places_every_three_role_configuration_in_the_zones(samples_store, monkeypatch,
                                                                         tmp_path) -> None:
    at = open_page("learn_gap", samples_store, monkeypatch, tmp_path)
    zones = gap_chart(at)
    texts = {a.get("text", "").replace("<br>", " ") for a in zones["layout"].get("annotations", [])}
    assert {"below 1.1x learn together (online)", "1.1–1.5x distil directly", "1.5–3x add one teacher assistant",
            "3x and more two or more assistants (progressive)"} <= texts  # what the survey recommends in each
    counted = next(c.value for c in at.caption if c.value.split()[0].isdigit())
    assert gap_count(at) >= 15 and " configurations from " in counted  # one point per configuration
    assert int(counted.split(" configurations from ")[1].split()[0]) > gap_count(at)  # ...over more studies
    assert "largest loss" not in counted


def test_capacity_gap_marks_provoked_studies_and_keeps_them_from_stretching_the_scale(samples_store, monkeypatch,
                                                                                       tmp_path) -> None:
    at = open_page("learn_gap", samples_store, monkeypatch, tmp_path)
    zones = gap_chart(at)
    traces = {t.get("name"): t for t in zones["data"]}
    provoked = traces["provoked failure (made to fail on purpose)"]
    assert provoked["text"] and all(name.startswith("provoked ") for name in provoked["text"])
    assert not any(name.startswith("provoked ") for name in traces["study"]["text"])
    low, high = zones["layout"]["yaxis"]["range"]
    assert -20 < low < -3.5 and high < 20  # the cross-modal collapse (-55 points) sits at the edge...
    edge = [a["text"] for a in zones["layout"]["annotations"] if a.get("showarrow")]
    assert "-55.5 pts" in edge  # ...labelled with its mean over the three unaligned seeds
    caption = " ".join(c.value for c in at.caption)
    assert "8 were provoked to fail on purpose" in caption  # 5 modes over 3 seeds, and 3 temperatures at seed 0
    assert f"{len(edge)} {'lies' if len(edge) == 1 else 'lie'} far outside" in caption


W8 = "mnist1d cnn1d->mlp w8 kd"
INTERVAL = r"\d+\.\d+%? \[\d+\.\d+, \d+\.\d+\] · 3 seeds"  # mean [95% interval] · n seeds


def test_capacity_gap_gives_each_width_over_its_seeds(samples_store, monkeypatch, tmp_path) -> None:
    """Every width of the sweep has seeds 0, 1 and 2: its accuracies and gap are a mean with its interval, its gain
    the paired difference with its verdict, as docs/workshop.md quotes them; a configuration of one seed says so."""
    at = open_page("learn_gap", samples_store, monkeypatch, tmp_path)
    table = at.dataframe[0].value.set_index("configuration")
    assert list(table.columns) == ["seeds", "teacher / baseline", "teacher", "baseline", "distilled", "gain", "zone",
                                   "the survey recommends", "provoked failure"]
    assert len(table) == gap_count(at)
    for width in (8, 16, 64, 128):
        row = table.loc[f"mnist1d cnn1d->mlp w{width} kd"]
        assert row["seeds"] == "0, 1, 2", width
        for column in ("teacher / baseline", "teacher", "baseline", "distilled"):
            assert re.fullmatch(INTERVAL, row[column]), (width, column, row[column])
        assert re.fullmatch(r"[+-]\d+\.\d pts \[[+-]\d+\.\d, [+-]\d+\.\d\] \(paired t-interval, n = 3\): "
                            r"(helps|hurts|cannot tell with 3 seeds.*)", row["gain"]), row["gain"]
    w8 = table.loc[W8]
    assert (w8["teacher / baseline"], w8["baseline"], w8["distilled"], w8["zone"], w8["the survey recommends"]) == (
        "3.55 [3.31, 3.79] · 3 seeds", "27.2% [25.3, 29.0] · 3 seeds", "25.1% [19.2, 30.9] · 3 seeds",
        "3x and more", "two or more assistants (progressive)")  # docs/workshop.md, exercise 2
    assert w8["gain"].startswith("-2.1 pts [-8.9, +4.7] (paired t-interval, n = 3): cannot tell with 3 seeds")
    single = table.loc["worked example 2 - rgb->depth aligned"]
    assert single["seeds"] == "0" and single["distilled"] == "85.3% · one seed: no interval"
    assert single["gain"] == "-3.3 pts · one seed: no interval"
    assert table.loc["provoked cross_modal_failure - rgb->depth unaligned", "provoked failure"] == "yes"
    bars = {t["name"]: t for t in gap_chart(at)["data"] if t.get("name")}["study"]  # the gain's interval, drawn
    spans = {name.replace("&gt;", ">"): span for name, span in zip(bars["text"], bars["error_y"]["array"],
                                                                     strict=True)}
    assert spans[f"{W8} (3 seeds)"] == pytest.approx(6.8, abs=0.05)
    assert spans["worked example 2 - rgb->depth aligned"] is None


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
    tables = [frame.value for frame in at.dataframe][::2]  # each mode's verdicts, then its accuracies
    assert [list(table.columns) for table in tables] == [
        ["seed 0", "seed 1", "seed 2", "no finding"]] * len(FAILURE_MODES)
    for table, (code, cleared) in zip(tables, CLEARED.items(), strict=True):
        assert table["no finding"].to_dict() == {row: f"{n} of 3" for row, n in cleared.items()}, code
        assert table.loc["Provoked", "seed 0"].startswith(code)  # each provoked seed names its own mode
    alerts = " ".join(e.value for e in [*at.error, *at.warning])
    for code in FAILURE_MODES:
        assert f"`{code}`" in alerts
    # Seed 0, then with its fix: choosing another fix shows that study's verdict.
    shown = {m.value for m in at.markdown if m.value.startswith("*fixed progressive_degradation")}
    at.radio(key="learn-fix-progressive_degradation").set_value("No chain: distil directly").run()
    now = {m.value for m in at.markdown if m.value.startswith("*fixed progressive_degradation")}
    assert now == {"*fixed progressive_degradation - direct seed0*"} and now != shown


def test_failure_modes_give_each_study_s_key_accuracies_over_its_seeds(samples_store, monkeypatch,
                                                                      tmp_path) -> None:
    """Each study of a mode is given over its three seeds: accuracies as a mean with its interval, the student against
    its baseline and each fix against the provoked study paired by seed, with the test and the verdict."""
    at = open_page("learn_failure_modes", samples_store, monkeypatch, tmp_path)
    tables = [frame.value for frame in at.dataframe][1::2]
    assert len(tables) == len(FAILURE_MODES)
    paired = r"[+-]\d+\.\d pts \[[+-]\d+\.\d, [+-]\d+\.\d\] \(paired t-interval, n = 3\): (helps|hurts|cannot tell)"
    for table, mode in zip(tables, FAILURE_MODES.values(), strict=True):
        assert list(table.columns) == ["study", "seeds", "teacher", "baseline", "student", "student − baseline",
                                       "student − provoked"]
        assert len(table) == 1 + len(mode.fixes) and (table["seeds"] == "0, 1, 2").all()
        for column in ("teacher", "baseline", "student"):
            assert table[column].str.fullmatch(INTERVAL).all(), (mode.title, table[column].tolist())
        assert table["student − baseline"].str.match(paired).all(), table["student − baseline"].tolist()
        assert table["student − provoked"].iloc[0] == "-" and table["student − provoked"].iloc[1:].str.match(
            paired).all(), table["student − provoked"].tolist()
    mismatch = tables[0].set_index("study")
    assert (mismatch.loc["Provoked", "student"], mismatch.loc["Provoked", "student − baseline"]) == (
        "42.2% [41.5, 43.0] · 3 seeds", "-8.1 pts [-13.3, -2.9] (paired t-interval, n = 3): hurts")  # the guide's
    assert mismatch.loc["Labels first: alpha 0.1", "student − provoked"] == (
        "+6.2 pts [+4.8, +7.7] (paired t-interval, n = 3): helps")
    per_seed = " ".join(str(v) for frame in at.dataframe[::2] for v in frame.value.to_numpy().ravel())
    assert "%" not in per_seed  # the findings per seed carry no single-seed accuracy
    captions = " ".join(c.value for c in at.caption)
    assert "reaches 25.2% [22.4, 28.1] · 3 seeds alone" in captions  # the degradation's "why", measured


def button_widths(node, share: float = 1.0) -> dict[str, list[float]]:
    """Each button's label -> the shares of the page's width its columns leave it (nested columns multiply)."""
    share *= getattr(node, "weight", 1.0) if getattr(node, "type", "") == "column" else 1.0
    found: dict[str, list[float]] = {}
    if getattr(node, "type", "") == "button":
        found.setdefault(node.label, []).append(share)
    for child in getattr(node, "children", {}).values():
        for label, shares in button_widths(child, share).items():
            found.setdefault(label, []).extend(shares)
    return found


def test_failure_mode_fix_buttons_have_room_for_their_labels(samples_store, monkeypatch, tmp_path) -> None:
    """At 1280 px the main area is about 860 px wide: no button may sit in columns that leave it less than a third
    of it (a 22-character label with its icon needs about 215 px)."""
    at = open_page("learn_failure_modes", samples_store, monkeypatch, tmp_path)
    widths = button_widths(at._tree)
    assert {"Relaunch with this fix", "Edit the fix in Launch"} <= widths.keys()
    assert min(share for shares in widths.values() for share in shares) >= 1 / 3, widths


def plain(markdown: str) -> str:
    """Text the page escaped for Markdown, as the reader sees it."""
    return markdown.replace(WORD_JOINER, "").replace("\\", "")


def gate_lines(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith((":material/check_circle:", ":material/cancel:",
                                                                ":material/help:"))]


def test_quality_gates_walk_all_ten_on_a_real_study(samples_store, monkeypatch, tmp_path) -> None:
    at = open_page("learn_quality_gates", samples_store, monkeypatch, tmp_path)
    gates = gate_lines(at)
    assert len(gates) == 10 and "Gate 1:" in gates[0]
    assert at.selectbox(key="learn-gates-study").format_func(at.selectbox(key="learn-gates-study").value) \
        .startswith("worked example 2")
    shown = [m.value for m in at.markdown if m.value.startswith("Numbers:")]  # worked example 2 has one seed
    assert shown and all(plain(line).endswith("(one seed: no interval)") for line in shown), shown
    assert any(c.value.startswith("This configuration has one seed in this store") for c in at.caption)


def test_quality_gates_give_a_study_s_numbers_over_its_seeds(samples_store, monkeypatch, tmp_path) -> None:
    studies = tracking.list_studies(samples_store)
    aligned = studies.loc[studies["name"] == "fixed cross_modal_failure - aligned seed1", "study_id"].iloc[0]
    at = open_page("learn_quality_gates", samples_store, monkeypatch, tmp_path)
    at.selectbox(key="learn-gates-study").set_value(aligned).run()
    assert not at.exception
    gates = gate_lines(at)
    assert len(gates) == 10 and "here; over the seeds, passed on seeds 0, 1, 2" in gates[0]
    assert any(plain(gate).count(" on seed") > 1 for gate in gates)  # a gate that differs between seeds (the guide)
    first = next(m.value for m in at.markdown if m.value.startswith("Numbers:"))
    assert re.search(r"student_over_teacher 0\.\d+ \[.+\] · 3 seeds", plain(first)), first
    assert any("over the configuration's 3 seeds in this store (0, 1, 2)" in c.value for c in at.caption)


def test_workshop_mode_opens_on_learn(samples_store, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KDX_WORKSHOP", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", samples_store)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception and at.title[0].value == "Temperature and soft labels"


def test_numbers_over_seeds_say_their_interval_or_that_there_is_one_seed() -> None:
    assert lessons.over_seeds([0.5, 0.52, 0.54], percent=True) == "52.0% [47.0, 57.0] · 3 seeds"
    assert lessons.over_seeds([0.5, float("nan")], percent=True) == "50.0% · one seed: no interval"
    assert lessons.over_seeds([1.84], percent=False) == "1.84 · one seed: no interval"
    assert lessons.over_seeds([], percent=True) == "-"
    assert lessons.difference_text(paired_difference([0.6, 0.62, 0.61], [0.5, 0.5, 0.52])) == (
        "+10.3 pts [+6.5, +14.1] (paired t-interval, n = 3): helps")
    assert lessons.difference_text(paired_difference([0.6], [0.5])) == "+10.0 pts · one seed: no interval"
    assert lessons.difference_text(None) == "-"
    roles = pd.DataFrame({"teacher": [0.9, 0.8, 1.0], "assistant_1": [0.45, 0.4, 0.5]}, index=["0", "1", "2"])
    found = lessons.role_numbers(roles)
    assert found["assistant_1_of_teacher"] == "50.0% [50.0, 50.0] · 3 seeds" and found["student"] == "-"
    assert "{assistant_1_of_teacher}" in FAILURE_MODES["progressive_degradation"].why


def test_learn_charts_are_pure() -> None:
    bars = lesson_charts.soft_labels(np.array([0.7, 0.2, 0.1]), 0, 4)
    assert bars.data[0].marker.color[0] != bars.data[0].marker.color[1]
    zones = lesson_charts.gap_zones(pd.DataFrame({"ratio": [1.2, 4.0], "gain": [1.0, -3.0], "label": ["a", "b"]}),
                             [(0, 1.1, "similar"), (1.1, 1.5, "direct"), (1.5, float("inf"), "assistants")])
    assert len(zones.layout.shapes) >= 3 and list(zones.data[0].y) == [1.0, -3.0]
    picture = lesson_charts.example_input(np.arange(64.0).reshape(1, 8, 8), "a digit")
    assert picture.data[0].type == "heatmap" and picture.layout.yaxis.scaleanchor == "x"
    assert lesson_charts.example_input(np.zeros((1, 40)), "a signal").data[0].type == "scatter"


def test_the_gap_chart_draws_provoked_studies_apart_and_far_outliers_at_the_edge() -> None:
    points = pd.DataFrame({"ratio": [1.05, 1.3, 2.0, 3.5, 1.0, 1.07], "gain": [1.5, -1.0, -2.0, -3.5, -56.0, -61.0],
                           "label": list("abcdef"), "provoked": [False, False, False, False, True, False]})
    figure = lesson_charts.gap_zones(points, [(0, 1.1, "together"), (1.1, float("inf"), "direct")])
    names = {trace.name: list(trace.y) for trace in figure.data if trace.showlegend is not False}
    assert names == {"study": [1.5, -1.0, -2.0, -3.5]}  # the provoked one is beyond the scale, at the edge
    low, high = figure.layout.yaxis.range
    assert -10 < low < -3.5 and high < 10
    assert sorted(a.text for a in figure.layout.annotations if a.showarrow) == ["-56.0 pts", "-61.0 pts"]
    inside = lesson_charts.gap_zones(points.assign(gain=[1.5, -1.0, -2.0, -3.5, -4.0, 0.5]), [(0, 10, "all")])
    assert {t.name for t in inside.data} == {"study", "provoked failure (made to fail on purpose)"}
    assert inside.data[0].error_y.array is None  # no interval given: no error bars
    over = points.assign(gain_low=[0.5, -2.0, -3.0, -4.5, -57.0, -61.0], gain_high=[2.5, 0.0, -1.0, -2.5, -55.0, -61.0],
                         ratio_half=[0.01, 0.02, float("nan"), 0.1, 0.0, 0.0])
    drawn = lesson_charts.gap_zones(over, [(0, 10, "all")]).data[0]
    assert list(drawn.error_y.array) == [1.0, 1.0, 1.0, 1.0] and list(drawn.error_y.arrayminus) == [1.0] * 4
    assert drawn.error_x.array[1] == 0.02 and math.isnan(drawn.error_x.array[2])

    assert lesson_charts.size_against_accuracy(pd.DataFrame()).layout.title.text == "Student size against accuracy"

"""Sweep under AppTest over real tiny sweeps (:func:`tests.helpers.sweep_store`): the points by gain with their
verdicts, the Holm statement, the best point as a validation choice, the heatmap and the line with their axes,
progress and failed studies with their reasons, a running sweep computed from its studies, and the empty
state; then the chart builders on hand-made numbers (a third axis averaged or fixed, random draws)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data, sweeps
from dashboard.sweep_charts import NEAR_ZERO, cells, gain_map, interval_text, points_text
from kdcore.seed_stats import paired_difference
from kdcore.study import Study
from kdcore.sweep import SUMMARY_FILE, start
from kdcore.sweep_spec import load_sweep
from kdcore.tracking import MlflowTracker, read_artifact
from tests.helpers import BROKEN, SweepStore, sweep_store, tiny_config
from tests.test_dashboard import app, as_read

HOLM = "p-values Holm-corrected across {} points; a point differs from its baseline only after the correction."


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> SweepStore:
    return sweep_store(tmp_path_factory)


def use(uri: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the dashboard at the store ``uri``, with nothing cached from another store."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("KDX_JOBS_DIR", str(folder / "jobs"))
    data.clear()
    return uri


@pytest.fixture
def uri(store: SweepStore, monkeypatch: pytest.MonkeyPatch) -> str:
    return use(store.uri, store.folder, monkeypatch)


def open_sweep(sweep_id: str | None = None) -> AppTest:
    """The Sweep page, arriving by a link to ``sweep_id`` (its first 8 characters) when given."""
    at = app().run()
    if sweep_id:
        at.query_params["sweep"] = sweep_id[:8]
    at.switch_page("views/sweep.py").run()
    assert not at.exception, at.exception
    return at


def summary(uri: str, sweep_id: str) -> dict:
    return json.loads(read_artifact(sweep_id, SUMMARY_FILE, uri))


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def table(at: AppTest) -> pd.DataFrame:
    (found,) = at.dataframe
    return found.value


def test_points_are_sorted_by_gain_with_their_verdicts(uri: str, store: SweepStore) -> None:
    expected = {row["point"]: row for row in summary(uri, store.ids["grid"])["points"]}
    at = open_sweep(store.ids["grid"])
    rows = table(at)
    assert list(rows["gain"]) == sorted(rows["gain"], reverse=True)
    assert list(rows["point"]) == sorted(expected, key=lambda p: -expected[p]["mean"])
    for _, row in rows.iterrows():
        want = expected[row["point"]]
        assert row["gain"] == pytest.approx(100 * want["mean"])
        assert row["interval"] == interval_text(want["low"], want["high"])
        assert row["verdict"] == want["verdict"] == "cannot tell with 2 seeds"
        assert want["holm_verdict"] == "cannot tell after Holm's correction" and row["after Holm"] == "cannot tell"
        assert row["distill.temperature"] == str(want["values"]["distill.temperature"])


def test_rows_link_to_the_points_seeds_in_compare(uri: str, store: SweepStore) -> None:
    expected = {row["point"]: row["study_ids"] for row in summary(uri, store.ids["grid"])["points"]}
    rows = table(open_sweep(store.ids["grid"]))
    for point, link in zip(rows["point"], rows["studies"], strict=True):
        assert link == "/compare?studies=" + ",".join(study_id[:8] for study_id in expected[point])


def test_holm_statement_names_the_points_it_corrects_across(uri: str, store: SweepStore) -> None:
    at = open_sweep(store.ids["grid"])
    assert any(text.startswith(HOLM.format(4)) for text in markdown(at)), markdown(at)


def test_best_point_is_shown_as_a_validation_choice(uri: str, store: SweepStore) -> None:
    found = summary(uri, store.ids["grid"])
    best = next(row for row in found["points"] if row["point"] == found["best"])
    at = open_sweep(store.ids["grid"])
    assert any(text.startswith(f"**Best point, chosen on validation: {best['point']}**") for text in markdown(at))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test gain"] == f"{points_text(best['mean'])} pts"
    assert metrics["95% interval (pts)"] == interval_text(best["low"], best["high"])
    assert any(c.value.startswith("This is a validation choice") and "reported once" in c.value for c in at.caption)
    assert table(at).set_index("point").loc[best["point"], "best"] == "★"


def test_heatmap_and_line_name_their_axes_and_mark_cells_near_zero(uri: str, store: SweepStore) -> None:
    expected = {(row["values"]["distill.temperature"], row["values"]["distill.alpha"]): row
                for row in summary(uri, store.ids["grid"])["points"]}
    heat, line = figures(open_sweep(store.ids["grid"]))
    assert heat["data"][0]["type"] == "heatmap"
    assert heat["layout"]["xaxis"]["title"]["text"] == "distill.temperature"
    assert heat["layout"]["yaxis"]["title"]["text"] == "distill.alpha"
    cell = heat["data"][0]
    for j, alpha in enumerate(cell["y"]):
        for i, temperature in enumerate(cell["x"]):
            row = expected[(int(temperature), float(alpha))]
            assert cell["z"][j][i] == pytest.approx(100 * row["mean"])
            assert cell["text"][j][i].startswith(points_text(row["mean"]))
            assert (NEAR_ZERO in cell["text"][j][i]) == (row["low"] <= 0 <= row["high"])
    assert line["layout"]["xaxis"]["title"]["text"] == "distill.temperature"
    lines = {t["name"] for t in line["data"] if t.get("fill") != "toself"}
    bands = {t["name"] for t in line["data"] if t.get("fill") == "toself"}
    assert lines == {"distill.alpha=0.5", "distill.alpha=0.9"} and bands == {f"{n} interval" for n in lines}


def test_sweeps_are_listed_newest_first_with_status_and_counts(uri: str, store: SweepStore) -> None:
    at = open_sweep()
    box = at.selectbox(key="sweep_choice")
    assert box.options == [f"running · running · 1 finished · {store.ids['running'][:8]}",
                           f"broken · failed · 1 finished, 1 failed · {store.ids['broken'][:8]}",
                           f"grid · finished · 8 finished · {store.ids['grid'][:8]}"]
    assert box.value == store.ids["running"]  # the newest, when no link names one
    assert at.query_params["sweep"] == store.ids["running"][:8]


def test_a_failed_study_shows_its_reason(uri: str, store: SweepStore) -> None:
    (failed,) = [f["study_id"] for f in summary(uri, store.ids["broken"])["failed"]]
    at = open_sweep(store.ids["broken"])
    warnings = [as_read(w.value) for w in at.warning]
    assert any("1 failed study" in w and f"p01-s0** (study {failed[:8]}): {BROKEN}" in w for w in warnings), warnings
    assert at.get("progress")[0].proto.text == "1 of 2 studies finished, 1 failed"
    assert table(at)["verdict"].tolist() == ["cannot tell with 1 seed", "no finished study"]


def test_a_running_sweep_is_computed_from_its_finished_studies(uri: str, store: SweepStore) -> None:
    at = open_sweep(store.ids["running"])
    assert at.get("progress")[0].proto.text == "1 of 2 studies finished"
    assert any("until then the rows below are computed" in c.value for c in at.caption)
    rows = table(at)
    assert rows["point"].tolist() == ["p00"] and rows["seeds"].tolist() == [1]
    assert rows["studies"][0].startswith("/study?id=")  # one study: Study detail
    (line,) = figures(at)  # one axis: no heatmap, a line along it
    assert line["layout"]["xaxis"]["title"]["text"] == "distill.temperature"
    assert not any(text.startswith("p-values Holm-corrected") for text in markdown(at))  # one seed: no p-value
    assert any(text.startswith("**Best point so far, chosen on validation: p00**") for text in markdown(at))


def test_the_live_rows_are_the_summary_the_sweep_writes(uri: str, store: SweepStore) -> None:
    listed = sweeps.listing(uri).set_index("sweep_id")
    for name in ("grid", "broken"):
        sweep_id = store.ids[name]
        found = sweeps.spec(uri, sweep_id, listed.loc[sweep_id, "name"]).value
        mine = sweeps.current(sweeps.studies(uri)).query("sweep_id == @sweep_id")
        assert sweeps.live_summary(sweep_id, found, mine) == summary(uri, sweep_id)


def test_an_empty_store_says_how_to_run_a_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = use(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, monkeypatch)
    for _ in range(2):  # empty, then with a study that is not part of a sweep
        at = open_sweep()
        (info,) = at.info
        assert "No sweeps in this store yet" in info.value
        assert "`kdx sweep examples/sweep_temperature.yaml`" in info.value and "Sweep editor on Launch" in info.value
        assert not at.dataframe and not at.get("plotly_chart")
        Study(tiny_config(), MlflowTracker(uri), progress=False).run()
        data.clear()


# --- three axes, from hand-made studies --------------------------------------------------------------------
JITTER = [0.0, 0.002, -0.002]  # per seed: a small spread, so intervals are narrow but not empty


def gain(temperature: int, width: int) -> float:
    """The hand-made gain of a point: 3 points at temperature 4, 1 more at width 16, none at alpha."""
    return 0.03 * (temperature == 4) + 0.01 * (width == 16)


@pytest.fixture(scope="module")
def three_axes(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """A sweep over temperature x alpha x student width, 3 seeds, whose studies are written by hand (no
    training), stopped before it summarised: (uri, folder, sweep id)."""
    folder = tmp_path_factory.mktemp("three")
    (folder / "tiny.yaml").write_text(json.dumps(tiny_config().to_dict()))
    text = ("base: tiny.yaml\nname: three\nseeds: [0, 1, 2]\ngrid:\n  distill.temperature: [1, 4]\n"
            "  distill.alpha: [0.5, 0.9]\n  student.width: [8, 16]\n")
    (folder / "three.yaml").write_text(text)
    tracker = MlflowTracker(f"sqlite:///{folder / 'mlflow.db'}")
    sweep_id = start(tracker, load_sweep(folder / "three.yaml"), text, None)
    grid = [(t, a, w) for t in (1, 4) for a in (0.5, 0.9) for w in (8, 16)]
    for i, (t, a, w) in enumerate(grid):
        values = {"distill.temperature": t, "distill.alpha": a, "student.width": w}
        for seed, jitter in enumerate(JITTER):
            study = tracker.start_run(f"three {i} {seed}", {
                "kd.role": "study", "kd.sweep_id": sweep_id, "kd.sweep_point": f"p{i:02d}",
                "kd.sweep_key": f"p{i:02d}-s{seed}", "kd.sweep_values": json.dumps(values)}, {})
            baseline = 0.8 + 0.01 * seed
            tracker.log_metrics(study, {"study/student_acc": baseline + gain(t, w) + jitter,
                                        "study/baseline_acc": baseline, "study/val_student_acc": 0.5 + gain(t, w),
                                        "study/val_baseline_acc": 0.5}, 0)
            tracker.end_run(study)
    tracker.end_run(sweep_id, "KILLED")
    return tracker.uri, folder, sweep_id


def heatmap_cells(at: AppTest) -> dict[tuple[str, str], float]:
    heat = figures(at)[0]["data"][0]
    return {(x, y): heat["z"][j][i] for j, y in enumerate(heat["y"]) for i, x in enumerate(heat["x"])}


def test_a_third_axis_is_averaged_or_fixed_at_a_value(three_axes, monkeypatch: pytest.MonkeyPatch) -> None:
    uri, folder, sweep_id = three_axes
    use(uri, folder, monkeypatch)
    at = open_sweep(sweep_id)
    assert any("ended before it wrote its summary" in c.value for c in at.caption)
    assert at.selectbox(key="sweep_x").value == "distill.temperature"
    assert at.selectbox(key="sweep_y").value == "distill.alpha"
    assert "student.width averaged" in figures(at)[0]["layout"]["title"]["text"]
    assert heatmap_cells(at) == pytest.approx({("1", "0.5"): 0.5, ("4", "0.5"): 3.5, ("1", "0.9"): 0.5,
                                               ("4", "0.9"): 3.5})
    at.radio(key="sweep_others").set_value("fixed at a value").run()
    at.selectbox(key="sweep_fix_student.width").set_value(16).run()
    assert not at.exception, at.exception
    assert "student.width = 16" in figures(at)[0]["layout"]["title"]["text"]
    assert heatmap_cells(at) == pytest.approx({("1", "0.5"): 1.0, ("4", "0.5"): 4.0, ("1", "0.9"): 1.0,
                                               ("4", "0.9"): 4.0})
    at.selectbox(key="sweep_y").set_value("student.width").run()  # the heatmap over another pair of axes
    heat = figures(at)[0]
    assert heat["layout"]["yaxis"]["title"]["text"] == "student.width"
    assert "distill.alpha = 0.5" in heat["layout"]["title"]["text"]


# --- the chart builders -------------------------------------------------------------------------------------
def seeds_of(points: dict[str, dict], seeds: int = 3) -> pd.DataFrame:
    """Per (point, seed) rows for the builders: point id -> axis values; student = baseline + ``gain`` +
    the seed's jitter."""
    return pd.DataFrame([{"point": point, **{k: v for k, v in values.items() if k != "gain"}, "seed": seed,
                          "student": 0.8 + values["gain"] + JITTER[seed], "baseline": 0.8}
                         for point, values in points.items() for seed in range(seeds)])


def test_a_cell_of_one_point_has_that_points_interval() -> None:
    rows = seeds_of({"p00": {"lr": 0.01, "gain": 0.02}, "p01": {"lr": 0.1, "gain": 0.0}})
    found = cells(rows, ["lr"]).set_index("lr")
    for lr, point in ((0.01, "p00"), (0.1, "p01")):
        mine = rows[rows["point"] == point]
        diff = paired_difference(mine["student"], mine["baseline"])
        assert (found.loc[lr, "mean"], found.loc[lr, "low"], found.loc[lr, "high"]) == (diff.mean, diff.low, diff.high)
    assert not found.loc[0.01, "near_zero"] and found.loc[0.1, "near_zero"]


def test_random_draws_are_a_scatter_and_a_grid_a_heatmap() -> None:
    drawn = {f"p{i:02d}": {"lr": lr, "alpha": alpha, "gain": 0.01 * i}
             for i, (lr, alpha) in enumerate([(0.0004, 0.21), (0.003, 0.77), (0.02, 0.5), (0.0011, 0.34)])}
    figure = gain_map(cells(seeds_of(drawn), ["lr", "alpha"]), "lr", "alpha")
    assert figure.data[0].type == "scatter" and figure.layout.xaxis.type == "log"
    assert figure.layout.xaxis.title.text == "lr" and figure.layout.yaxis.title.text == "alpha"
    grid = {f"p{i}": {"lr": lr, "alpha": alpha, "gain": 0.0} for i, (lr, alpha) in
            enumerate((lr, alpha) for lr in (0.001, 0.01) for alpha in (0.5, 0.9))}
    assert gain_map(cells(seeds_of(grid), ["lr", "alpha"]), "lr", "alpha").data[0].type == "heatmap"


def test_gains_are_accuracy_points_with_one_decimal() -> None:
    assert points_text(0.0123) == "+1.2" and points_text(-0.004) == "-0.4" and points_text(math.nan) == "-"
    assert interval_text(-0.003, 0.027) == "[-0.3, +2.7]" and interval_text(None, None) == "-"

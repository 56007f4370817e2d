"""The Compare page under AppTest on real tiny studies: every role drawn or named, groups by method and mechanism,
parallel coordinates only where they say something, a selection that travels in the URL, and numbers over seeds:
intervals, verdicts and the difference between two configurations, paired or not."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from urllib.request import url2pathname

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data, seed_intervals
from kdcore.seed_stats import mean_interval
from kdcore.study import Study
from kdcore.tracking import MlflowTracker
from tests.helpers import tiny_config
from tests.test_dashboard import app, as_read
from tests.test_dashboard_damaged_store import values

REUSED = "reused from another study, no predictions logged here"
CHAIN = ["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16, depth: 1}]"]
SEEDED = {"T2": (0, 1, 2), "T8": (0, 1, 2), "T1": (1, 2)}  # temperature -> seeds: T2 and T8 pair up, T1 does not
PERCENT_INTERVAL = re.compile(r"^\d+\.\d% \[\d+\.\d, \d+\.\d\] · 3 seeds$")
RATIO_INTERVAL = re.compile(r"^\d\.\d\d \[\d\.\d\d, \d\.\d\d\] · 3 seeds$")
VERDICT = re.compile(r": (helps|hurts|cannot tell with 3 seeds)")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Three studies: ``offline`` trains its teacher, ``chain`` (teacher -> assistant_1 -> student) and ``reuse``
    (a wider student) reuse it; the teacher of ``reuse`` has no predictions, as in a store made before
    reused teachers logged them."""
    path = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        uri = f"sqlite:///{path / 'mlflow.db'}"
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("KDX_JOBS_DIR", str(path / "jobs"))
        tracker = MlflowTracker(uri, "kd-explorer")
        ids = {name: Study(tiny_config(f"tracking.study_name={name}", *overrides), tracker, progress=False).run()
               .study_id for name, overrides in (("offline", []), ("chain", CHAIN), ("reuse", ["student.width=16"]))}
        teacher = tracker.find_runs({"kd.study_id": ids["reuse"], "kd.role": "teacher"})[0]
        assert teacher.tags.get("kd.reused_from"), "the reuse study should reuse the offline study's teacher"
        artifacts = tracker.client.get_run(teacher.run_id).info.artifact_uri
        Path(url2pathname(urlparse(artifacts).path), "predictions.npz").unlink()
        yield ids


@pytest.fixture(scope="module")
def seeded(store: dict[str, str]) -> dict[str, str]:
    """Three more configurations in the same store, at temperatures the others do not use: ``T2`` and ``T8`` over
    seeds 0, 1 and 2, ``T1`` over seeds 1 and 2; studies named ``T2 seed0`` and so on."""
    tracker = MlflowTracker(os.environ["MLFLOW_TRACKING_URI"], "kd-explorer")
    ids = {f"{name} seed{seed}": Study(tiny_config(f"tracking.study_name={name} seed{seed}", f"train.seed={seed}",
                                                   f"distill.temperature={name[1:]}"), tracker, progress=False)
           .run().study_id for name, seeds in SEEDED.items() for seed in seeds}
    data.clear()  # the pages read the store through a cache that earlier tests filled
    return ids


def compare(*ids: str, **query: str) -> AppTest:
    """Compare with ``ids`` selected in the session, or with ``query`` in its URL."""
    at = app(selection=list(ids)).run()
    at.query_params.update(query)
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    return at


def figure(at: AppTest, title: str) -> dict:
    """The chart whose title starts with ``title``, as plotly JSON."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [f for f in figures if f["layout"].get("title", {}).get("text", "").startswith(title)]
    assert found, [f["layout"].get("title", {}).get("text") for f in figures]
    return found[0]


def names(chart: dict) -> list[str]:
    return [trace.get("name", "") for trace in chart["data"]]


def captions(at: AppTest) -> list[str]:
    return [as_read(c.value).replace("**", "") for c in at.caption]


def test_every_role_of_a_progressive_study_is_drawn_in_entropy_and_reliability(store) -> None:
    at = compare(store["chain"], store["offline"])
    expected = [f"chain · {role}" for role in ("teacher", "assistant_1", "baseline", "student")] + [
        f"offline · {role}" for role in ("teacher", "baseline", "student")]
    assert names(figure(at, "Predictive entropy")) == expected  # by study in selection order, chain order inside
    reliability = names(figure(at, "Reliability"))
    assert reliability[0] == "perfect calibration"
    assert [n.split(" (ECE ")[0] for n in reliability[1:]] == expected
    assert not any("No curve for" in c for c in captions(at))  # every role has predictions


def test_a_reused_teacher_without_predictions_is_named_under_each_prediction_chart(store) -> None:
    at = compare(store["offline"], store["reuse"])
    assert "reuse · teacher" not in names(figure(at, "Predictive entropy"))
    notes = [c for c in captions(at) if c.startswith("No curve for")]
    assert len(notes) == 2  # under entropy and under reliability
    assert all(f"teacher of reuse: {REUSED}" in note for note in notes), notes


def test_students_are_grouped_by_method_and_mechanism_and_one_study_has_no_error_bar(store) -> None:
    at = compare(*store.values())
    grouped = figure(at, "Student accuracy by method and mechanism")
    bars = {x for trace in grouped["data"] if trace["type"] == "bar" for x in trace["x"]}
    assert bars == {"kd · offline", "kd · progressive"}
    spread = {x for trace in grouped["data"] if trace.get("error_y", {}).get("visible") for x in trace["x"]}
    assert "kd · progressive" not in spread  # one study: no std to show
    assert spread == {"kd · offline"}


def test_prediction_legends_sit_below_the_plot(store) -> None:
    at = compare(*store.values())
    for title in ("Predictive entropy", "Reliability"):
        legend = figure(at, title)["layout"]["legend"]
        assert legend["orientation"] == "h" and legend["y"] < 0, legend


def test_parallel_coordinates_need_three_studies_that_differ(store) -> None:
    two = compare(store["offline"], store["reuse"])
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in two.get("plotly_chart")]
    assert not any(t.startswith("Hyperparameters") for t in titles)
    assert any("needs 3 or more studies that differ" in c for c in captions(two))

    three = compare(*store.values())
    parallel = figure(three, "Hyperparameters")
    labels = [d["label"] for d in parallel["data"][0]["dimensions"]]
    assert labels == ["student width", "student / teacher"]  # full words, not "s.width"


def test_a_link_with_study_prefixes_opens_their_comparison_and_links_back_with_them(store) -> None:
    prefixes = ",".join(store[name][:8] for name in ("chain", "reuse"))
    at = compare(studies=prefixes)  # nothing selected in the session: the URL decides
    assert not at.info, [i.value for i in at.info]
    studies = {n.split(" · ")[0] for n in names(figure(at, "Predictive entropy"))}
    assert studies == {"chain", "reuse"}
    assert at.session_state["selection"] == [store["chain"], store["reuse"]]
    back = [link for link in at.get("page_link") if "Studies" in link.proto.label]
    assert back and parse_qs(back[0].proto.query_string) == {"studies": [prefixes]}, back


def test_a_link_to_unknown_studies_says_so_and_offers_to_choose(store) -> None:
    at = compare(studies="ffffffff")
    assert any("No study in this store matches" in w.value for w in at.warning)
    assert any("Select two or more studies" in i.value for i in at.info)
    assert any("Choose studies" in link.proto.label for link in at.get("page_link"))


def over_seeds(at: AppTest) -> dict[str, dict[str, str]]:
    """The over-seeds table, by configuration."""
    tables = [table.value for table in at.table if "student − baseline" in table.value.columns]
    assert len(tables) == 1, [list(table.value.columns) for table in at.table]
    return {as_read(name): {key: as_read(str(value)) for key, value in row.items()}
            for name, row in tables[0].to_dict("index").items()}


def test_a_configuration_over_three_seeds_shows_mean_interval_and_the_paired_verdict(seeded) -> None:
    at = compare(seeded["T2 seed0"], seeded["T8 seed0"])  # one seed of each selected: the others are in the store
    table = over_seeds(at)
    assert set(table) == {"T2", "T8"}
    row = table["T2"]
    assert row["seeds"] == "0, 1, 2 (selected: 0)"
    assert PERCENT_INTERVAL.match(row["student"]), row["student"]
    assert RATIO_INTERVAL.match(row["student / teacher"]) and RATIO_INTERVAL.match(row["student / baseline"]), row
    tracker = MlflowTracker(os.environ["MLFLOW_TRACKING_URI"], "kd-explorer")
    accuracies = [tracker.get_run(seeded[f"T2 seed{s}"]).metrics["study/student_acc"] for s in SEEDED["T2"]]
    assert row["student"].startswith(f"{100 * mean_interval(accuracies).mean:.1f}% ")  # over all three seeds
    assert "(paired t-interval, n = 3)" in row["student − baseline"] and VERDICT.search(row["student − baseline"])
    assert any("every finished study in this store equal to it but for train.seed" in c for c in captions(at))


def test_bars_over_seeds_show_the_95_percent_interval_not_the_std(seeded) -> None:
    at = compare(seeded["T2 seed0"], seeded["T8 seed0"])
    ratios = figure(at, "Accuracy ratios")
    assert ratios["data"][0]["x"] == ["T2 (3 seeds)", "T8 (3 seeds)"]
    assert "95% interval" in ratios["layout"]["yaxis"]["title"]["text"]
    tracker = MlflowTracker(os.environ["MLFLOW_TRACKING_URI"], "kd-explorer")
    t2 = [tracker.get_run(seeded[f"T2 seed{s}"]).metrics["study/acc_ratio_teacher"] for s in SEEDED["T2"]]
    assert values(ratios["data"][0]["error_y"]["array"])[0] == pytest.approx(mean_interval(t2).half_width)
    grouped = figure(at, "Student accuracy by")
    bars = [trace for trace in grouped["data"] if trace.get("error_y", {}).get("visible")]
    assert [trace["name"] for trace in bars] == ["± 95% interval"]
    assert "95% interval" in grouped["layout"]["yaxis"]["title"]["text"]
    assert any("error bars: the 95% t-interval of that mean" in c for c in captions(at))


def test_the_difference_of_two_configurations_over_the_same_seeds_is_paired(seeded) -> None:
    at = compare(seeded["T2 seed0"], seeded["T8 seed0"])
    lines = [as_read(m.value).replace("**", "") for m in at.markdown if "Student test accuracy" in m.value]
    assert len(lines) == 1 and lines[0].startswith("Student test accuracy, T8 − T2: "), lines
    assert "(paired t-interval, n = 3)" in lines[0] and VERDICT.search(lines[0]), lines
    assert any(c.startswith("Paired by seed (0, 1, 2)") for c in captions(at))


def test_the_difference_of_configurations_over_other_seeds_is_welch(seeded) -> None:
    at = compare(seeded["T2 seed0"], seeded["T1 seed1"])
    lines = [as_read(m.value).replace("**", "") for m in at.markdown if "Student test accuracy" in m.value]
    assert len(lines) == 1 and lines[0].startswith("Student test accuracy, T1 − T2: "), lines
    assert "(Welch t-interval, n = 2 vs 3)" in lines[0], lines
    assert re.search(r"pts \[[+-]\d+\.\d, [+-]\d+\.\d\]", lines[0]), lines  # two seeds or more: an interval
    assert any(c.startswith("Unpaired: A has seeds 0, 1, 2, B has seeds 1, 2") for c in captions(at))


def test_one_seed_each_says_a_difference_cannot_be_judged_and_how_to_get_seeds(store) -> None:
    at = compare(store["offline"], store["reuse"])
    assert any("cannot be judged from one seed each" in c and "kdx sweep" in c for c in captions(at))
    assert not at.table
    assert any("has one seed" in c and "seeds: [0, 1, 2]" in c for c in captions(at))


def test_a_configuration_takes_its_seed_from_the_selected_study_and_the_rest_from_the_store() -> None:
    studies = pd.DataFrame({"study_id": ["a0", "a1", "b1", "a1old"], "label": ["A seed0", "A seed1", "B", "A seed1"],
                            "student_acc": [0.9, 0.8, 0.7, 0.1]})
    siblings = pd.DataFrame({"of": ["a1old", "a1old", "a1old", "b1"], "study_id": ["a1old", "a0", "a1", "b1"],
                             "seed": ["1", "0", "1", "1"], "config": ["A", "A", "A", "B"]},
                            columns=["of", "study_id", "seed", "config"])
    table = seed_intervals.members(["b1", "a1old"], siblings, studies)
    assert table[["config", "name", "seed", "study_id", "selected"]].values.tolist() == [
        [0, "B", "1", "b1", True], [1, "A", "0", "a0", False], [1, "A", "1", "a1old", True]]


def test_interval_text_gives_mean_and_interval_or_one_seed() -> None:
    estimate = mean_interval([0.92, 0.93, 0.94])
    low, high = 100 * (estimate.mean - estimate.half_width), 100 * (estimate.mean + estimate.half_width)
    assert seed_intervals.interval_text([0.92, 0.93, 0.94], percent=True) == f"93.0% [{low:.1f}, {high:.1f}] · 3 seeds"
    assert seed_intervals.interval_text([0.97, float("nan")], percent=False) == "0.97 · 1 seed"
    assert seed_intervals.interval_text([float("nan")], percent=True) == "-"

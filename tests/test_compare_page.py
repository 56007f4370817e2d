"""The Compare page under AppTest on real tiny studies: every role drawn or named, groups by method and mechanism,
parallel coordinates only where they say something, and a selection that travels in the URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from urllib.request import url2pathname

import pytest
from streamlit.testing.v1 import AppTest

from kdcore.study import Study
from kdcore.tracking import MlflowTracker
from tests.helpers import tiny_config
from tests.test_dashboard import app, as_read

REUSED = "reused from another study, no predictions logged here"
CHAIN = ["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16, depth: 1}]"]


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

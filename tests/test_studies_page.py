"""Studies under AppTest: the ticks in the table are the selection, and the caption, the buttons, the URL and
the findings shown agree with them, after filtering and after leaving the page and coming back."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import selection
from kdcore.study import Study
from kdcore.tracking import MlflowTracker, list_studies
from tests.helpers import tiny_config
from tests.test_dashboard import CAPACITY, DEGRADATION, OVERCONFIDENCE, app, diagnosed, open_page

NAMES = ("alpha study", "beta study", "gamma study")


@pytest.fixture
def uri(tmp_path, monkeypatch) -> str:
    """An empty store of its own, and a folder of its own for launched jobs."""
    monkeypatch.chdir(tmp_path)
    found = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", found)
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    return found


@pytest.fixture
def studies(uri: str) -> dict[str, str]:
    """Three diagnosed studies by name: alpha (overconfidence, 7 gates), beta (two findings, 4 gates) and
    gamma (none, 9 gates)."""
    tracker = MlflowTracker(uri, "kd-explorer")
    ids = {name: Study(tiny_config(f"tracking.study_name={name}"), tracker, progress=False).run().study_id
           for name in NAMES}
    diagnosed(uri, ids["alpha study"], [OVERCONFIDENCE], passed=7)
    diagnosed(uri, ids["beta study"], [CAPACITY, DEGRADATION], passed=4)
    diagnosed(uri, ids["gamma study"], [], passed=9)
    return ids


def tick(at: AppTest, name: str, on: bool = True) -> AppTest:
    """Tick (or untick) a study's row, as a click on its checkbox does, and rerun."""
    editor = at.data_editor[0]
    row = editor.value["label"].tolist().index(name)
    at.session_state[editor.key] = {"edited_rows": {row: {"select": on}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception, at.exception
    return at


def ticked(at: AppTest) -> set[str]:
    table = at.data_editor[0].value
    return set(table.loc[table["select"], "label"])


def shown(at: AppTest) -> set[str]:
    return set(at.data_editor[0].value["label"])


def status(at: AppTest) -> str:
    return next(c.value for c in at.caption if "studies shown" in c.value)


def enabled(at: AppTest, label: str) -> bool:
    return not next(b for b in at.button if b.label == label).disabled


def test_ticking_a_row_adds_it_and_unticking_removes_it(studies: dict[str, str]) -> None:
    at = app().run()
    assert ticked(at) == set() and status(at).endswith("· 0 selected")
    assert not enabled(at, "Compare selected") and not enabled(at, "Open study") and not enabled(at, "Clear selection")

    tick(at, "alpha study")
    assert ticked(at) == {"alpha study"} and status(at).endswith("· 1 selected")
    assert enabled(at, "Compare selected") and enabled(at, "Open study") and enabled(at, "Clear selection")

    tick(at, "gamma study")  # a second tick adds to the selection
    assert ticked(at) == {"alpha study", "gamma study"} and status(at).endswith("· 2 selected")
    assert enabled(at, "Compare selected") and not enabled(at, "Open study")
    assert at.session_state["selection"] == [studies["alpha study"], studies["gamma study"]]
    assert at.query_params["studies"] == selection.query([studies["alpha study"], studies["gamma study"]])["studies"]

    tick(at, "alpha study", on=False)
    assert ticked(at) == {"gamma study"} and status(at).endswith("· 1 selected")
    assert at.session_state["selection"] == [studies["gamma study"]]


def test_studies_hidden_by_the_filters_stay_selected_and_the_caption_says_so(studies: dict[str, str]) -> None:
    at = app().run()
    tick(at, "alpha study")
    tick(at, "beta study")
    at.slider(key="min_gates").set_value(5).run()  # beta passed 4 gates: hidden
    assert shown(at) == {"alpha study", "gamma study"} and ticked(at) == {"alpha study"}
    assert status(at) == "2 of 3 studies shown · 2 selected, 1 of them hidden by the filters"
    tick(at, "gamma study")
    assert set(at.session_state["selection"]) == set(studies.values())
    at.slider(key="min_gates").set_value(0).run()
    assert ticked(at) == set(NAMES) and status(at) == "3 of 3 studies shown · 3 selected"


def test_clear_selection_unticks_everything_and_hides_their_findings(studies: dict[str, str]) -> None:
    at = app().run()
    tick(at, "alpha study")
    assert any("Findings of the selected studies" in s.value for s in at.subheader)
    at.text_input(key="filter_text").set_value("gamma").run()
    at.button(key="clear_selection").click().run()
    assert status(at) == "1 of 3 studies shown · 0 selected" and ticked(at) == set()
    assert not enabled(at, "Compare selected") and not enabled(at, "Open study")
    assert not any("Findings of the selected studies" in s.value for s in at.subheader)
    assert at.session_state["selection"] == [] and "studies" not in at.query_params
    at.text_input(key="filter_text").set_value("").run()
    assert ticked(at) == set()


def test_findings_show_for_the_ticked_studies_only(studies: dict[str, str]) -> None:
    at = app().run()
    tick(at, "gamma study")  # no findings
    assert not any("Findings of the selected studies" in s.value for s in at.subheader)
    tick(at, "beta study")
    assert any("Findings of the selected studies" in s.value for s in at.subheader)
    titles = " ".join(e.value for e in at.error)
    assert "Capacity mismatch collapse" in titles and "Teacher overconfidence amplification" not in titles
    tick(at, "beta study", on=False)
    assert not any("Findings of the selected studies" in s.value for s in at.subheader)


def test_selection_and_filters_survive_compare_and_back(studies: dict[str, str]) -> None:
    at = app().run()
    at.multiselect(key="finding_filter").set_value(["overconfidence", "no findings"]).run()
    at.slider(key="min_gates").set_value(5).run()
    at.text_input(key="filter_text").set_value("study").run()
    assert shown(at) == {"alpha study", "gamma study"}
    tick(at, "alpha study")
    tick(at, "gamma study")

    at.button(key="compare_selected").click().run()
    assert not at.exception, at.exception
    assert any(t.value == "Compare" for t in at.title)
    chosen = [studies["alpha study"], studies["gamma study"]]
    assert at.query_params["studies"] == selection.query(chosen)["studies"]
    assert at.session_state["selection"] == chosen

    at.query_params.clear()  # the sidebar's link back carries no query
    at.switch_page("views/studies.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="finding_filter").value == ["overconfidence", "no findings"]
    assert at.slider(key="min_gates").value == 5 and at.text_input(key="filter_text").value == "study"
    assert shown(at) == {"alpha study", "gamma study"}
    assert ticked(at) == {"alpha study", "gamma study"} and status(at) == "2 of 3 studies shown · 2 selected"
    assert enabled(at, "Compare selected") and not enabled(at, "Open study")
    assert at.query_params["studies"] == selection.query(chosen)["studies"]  # the URL names them again


def test_the_url_ticks_the_studies_it_names_by_prefix(studies: dict[str, str]) -> None:
    at = app()
    at.query_params["studies"] = ",".join(studies[name][:8] for name in ("beta study", "gamma study"))
    at.run()
    assert not at.exception, at.exception
    assert ticked(at) == {"beta study", "gamma study"} and status(at).endswith("· 2 selected")
    assert at.session_state["selection"] == [studies["beta study"], studies["gamma study"]]


def test_open_study_opens_the_ticked_study(studies: dict[str, str]) -> None:
    at = open_page("study", study=studies["alpha study"])  # Study detail was showing another study
    at.switch_page("views/studies.py").run()
    tick(at, "beta study")
    at.button(key="open_study").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="study").value == studies["beta study"]
    assert at.query_params["id"] == studies["beta study"]


def test_finding_buttons_name_the_finding_and_its_count_in_a_short_label(studies: dict[str, str]) -> None:
    at = app().run()
    labels = {b.key: b.label.replace("\\", "") for b in at.button if b.key and b.key.startswith("summary-")}
    assert labels == {"summary-overconfidence": "overconfidence · 1", "summary-capacity_mismatch":
                      "capacity_mismatch · 1", "summary-progressive_degradation": "progressive_degradation · 1"}
    assert all(len(label) <= 30 for label in labels.values())


def test_the_table_leads_with_the_numbers_that_decide_in_their_formats(uri: str, studies: dict[str, str]) -> None:
    at = app().run()
    editor = at.data_editor[0]
    table = editor.value
    assert list(table.columns[:7]) == ["select", "label", "ratio_teacher", "ratio_baseline", "finding_count",
                                       "gates_passed", "student_acc"]
    counts = dict(zip(table["label"], table["finding_count"], strict=True))
    assert counts == {"alpha study": 1, "beta study": 2, "gamma study": 0}
    accuracy = list_studies(uri).set_index("name").loc["alpha study", "student_acc"]
    assert table.set_index("label").loc["alpha study", "student_acc"] == pytest.approx(100 * accuracy)
    columns = json.loads(editor.proto.columns)
    assert {name: columns[name]["type_config"]["format"] for name in ("student_acc", "teacher_acc", "ratio_teacher",
                                                                       "ratio_baseline")} == {
        "student_acc": "%.1f%%", "teacher_acc": "%.1f%%", "ratio_teacher": "%.2f", "ratio_baseline": "%.2f"}
    assert not columns["select"].get("disabled") and all(columns[name]["disabled"] for name in table.columns[1:])
    assert columns["label"]["width"] >= 6 * max(len(name) for name in NAMES)  # the names are not cut

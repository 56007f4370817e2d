"""Every dashboard page under Streamlit's AppTest, with an empty store and with example studies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import streamlit as st
import yaml
from streamlit.testing.v1 import AppTest

from kdcore import launcher
from kdcore.registry import MECHANISMS, METHODS
from kdcore.study import Study
from kdcore.tracking import MlflowTracker, list_studies
from tests.helpers import tiny_config

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
TIMEOUT = 60


@pytest.fixture
def empty_store(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    return uri


@pytest.fixture
def store(empty_store: str) -> tuple[str, list[str]]:
    tracker = MlflowTracker(empty_store, "kd-explorer")
    ids = [Study(tiny_config(f"train.seed={seed}", "train.epochs=2"), tracker, progress=False).run().study_id
           for seed in (0, 1)]
    ids.append(Study(tiny_config("distill.temperature=8", "train.epochs=2"), tracker, progress=False).run().study_id)
    return empty_store, ids


@pytest.fixture
def study(empty_store: str) -> Iterator[tuple[str, str]]:
    """One tiny study; any job a test launches from it is cancelled afterwards."""
    tracker = MlflowTracker(empty_store, "kd-explorer")
    yield empty_store, Study(tiny_config(), tracker, progress=False).run().study_id
    for job in launcher.list_jobs():  # a relaunched fix must not keep training in the background
        launcher.cancel(job.job_id)


OVERCONFIDENCE = {"code": "overconfidence", "title": "Teacher overconfidence amplification", "severity": "critical",
                  "evidence": {"student_entropy": 0.41, "teacher_entropy": 0.52, "student_acc": 0.8125,
                               "teacher_acc": 0.9, "student_ece": 0.031},
                  "fix": "Raise the temperature to 12.", "fix_overrides": ["distill.temperature=12"]}
CONFUSION = {"code": "knowledge_confusion", "title": "Knowledge type confusion", "severity": "warning",
             "evidence": {"kl_teacher_student": 0.02, "agreement": 0.5}, "fix": "Transfer features.",
             "fix_overrides": []}
CAPACITY = {"code": "capacity_mismatch", "title": "Capacity mismatch collapse", "severity": "critical",
            "evidence": {"student_acc": 0.7, "baseline_acc": 0.75, "drop_points": 5.0}, "fix": "Insert an assistant.",
            "fix_overrides": ["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16, depth: 1}]"]}
DEGRADATION = {"code": "progressive_degradation", "title": "Progressive learning degradation", "severity": "critical",
               "evidence": {"teacher_acc": 0.9, "assistant_1_acc": 0.7, "ratio": 0.778}, "fix": "Shorten the chain.",
               "fix_overrides": []}
CROSS_MODAL = {"code": "cross_modal_failure", "title": "Cross-modal alignment failure", "severity": "critical",
               "evidence": {"student_acc": 0.11, "chance": 0.1, "teacher_acc": 0.9}, "fix": "Align.",
               "fix_overrides": ["distill.no_such_key=1"]}


def diagnosed(uri: str, study_id: str, findings: list[dict[str, Any]], passed: int) -> None:
    """Log hand-made findings and gates on a study, as ``kdcore.study_results.diagnose`` would."""
    tracker = MlflowTracker(uri, "kd-explorer")
    gates = [{"number": n, "name": f"gate number {n}", "status": "passed" if n <= passed else "failed",
              "numbers": {"student_over_teacher": 0.96, "test_acc": 0.875}, "reason": f"reason {n}"}
             for n in range(1, 11)]
    tracker.log_bytes(study_id, "findings.json", json.dumps(findings).encode())
    tracker.log_bytes(study_id, "gates.json", json.dumps(gates).encode())
    tracker.set_tags(study_id, {"kd.findings": ",".join(f["code"] for f in findings)})
    tracker.client.log_metric(study_id, "study/gates_passed", passed, step=1)  # after diagnose's own (step 0)


def as_read(markdown: str) -> str:
    """What a reader sees of Markdown whose store text went through dashboard.text.md."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def app(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at


def open_page(page: str, **state) -> AppTest:
    at = app(**state).run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def test_studies_empty_store_offers_the_examples(empty_store: str) -> None:
    at = app().run()
    assert not at.exception
    assert any("No studies" in i.value for i in at.info)
    assert any(b.label == "Load the example studies" for b in at.button)


def test_studies_lists_every_study_with_filters(store) -> None:
    _, ids = store
    assert len(ids) == 3
    at = app().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 3 and set(table["method"]) == {"kd"}
    at.text_input[0].set_value("no such study").run()
    assert len(at.dataframe[0].value) == 0
    at.text_input[0].set_value("finished").run()  # a column other than the name, models and id: every one
    assert len(at.dataframe[0].value) == 3


def test_compare_without_selection_explains_what_to_do(store) -> None:
    at = open_page("compare")
    assert any("Select two or more studies" in i.value for i in at.info)


def test_compare_draws_every_chart(store) -> None:
    _, ids = store
    at = open_page("compare", selection=ids)
    charts = at.get("plotly_chart")
    assert len(charts) == 7
    import json

    grouped = json.loads(charts[1].proto.spec)
    assert grouped["layout"]["title"]["text"] == "Student accuracy by method and mechanism"
    bars = [trace for trace in grouped["data"] if trace["type"] == "bar"]
    assert [(trace["name"], trace["x"]) for trace in bars] == [("response", ["kd · offline"])]  # all kd, offline
    at.radio(key="group_by").set_value("knowledge").run()
    assert json.loads(at.get("plotly_chart")[1].proto.spec)["layout"]["title"]["text"] == (
        "Student accuracy by knowledge type")

    curves = json.loads(charts[0].proto.spec)
    names = [trace.get("name", "") for trace in curves["data"]]
    assert any("2 seeds" in n for n in names), names  # seeds 0 and 1 aggregate into one band
    assert len(at.dataframe) == 1  # the diff table: temperature and seed differ


def test_study_detail_shows_roles_and_config(store) -> None:
    uri, ids = store
    diagnosed(uri, ids[0], [], passed=10)  # no finding: no evidence charts
    at = open_page("study", study=ids[0])
    roles = at.dataframe[0].value
    assert sorted(roles["role"]) == ["baseline", "student", "teacher"]
    assert any("distill:" in c.value for c in at.code)
    assert len(at.get("plotly_chart")) == 3


def test_launch_form_rejects_bad_values_inline(empty_store: str) -> None:
    at = open_page("launch")
    launch = next(b for b in at.button if b.label == "Launch")
    assert not launch.disabled
    temperature = next(n for n in at.number_input if n.key.endswith("distill.temperature"))
    temperature.set_value(-2.0).run()
    assert any("greater than 0" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Launch").disabled
    epochs = next(n for n in at.number_input if n.key.endswith("train.epochs"))
    temperature.set_value(4.0).run()
    epochs.set_value(0).run()
    assert [e.value for e in at.error] == ["Input should be greater than or equal to 1 (got 0)"]


def test_launch_is_prefilled_from_study_detail(store) -> None:
    _, ids = store
    at = open_page("study")
    at.selectbox(key="study").select(ids[2]).run()
    assert any("temperature: 8.0" in c.value for c in at.code)
    next(b for b in at.button if b.label.startswith("Open in Launch")).click().run()
    assert not at.exception
    temperature = next(n for n in at.number_input if n.key.endswith("distill.temperature"))
    assert temperature.value == 8.0
    assert any(c.value.startswith("The form below holds **study ") and ids[2][:8] in c.value
               for c in at.caption)  # where the form came from, not the default example


def test_launch_says_it_opens_on_the_default_example_and_which_example_was_loaded(empty_store: str) -> None:
    at = open_page("launch")
    assert any("holds **the example digits_kd (the default)**" in c.value.replace("\\", "") for c in at.caption)
    picker = at.selectbox(key="launch-example")
    picker.select_index(next(i for i, o in enumerate(picker.options) if o.startswith("mnist1d_online:"))).run()
    next(b for b in at.button if b.label == "Load example").click().run()
    assert any("holds **the example mnist1d_online**" in c.value.replace("\\", "") for c in at.caption)


def test_studies_filter_by_finding_and_by_gates_passed(store) -> None:
    uri, ids = store
    diagnosed(uri, ids[0], [OVERCONFIDENCE, CONFUSION], passed=7)
    diagnosed(uri, ids[1], [OVERCONFIDENCE], passed=4)
    diagnosed(uri, ids[2], [], passed=9)
    names = list_studies(uri).set_index("study_id")["name"]
    a, b, c = (names[i] for i in ids)

    def shown() -> set[str]:
        return set(at.dataframe[0].value["label"])

    at = app().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert dict(zip(table["label"], table["gates_passed"], strict=True)) == {a: 7, b: 4, c: 9}
    assert {tuple(codes) for codes in table["finding_codes"]} == {("overconfidence", "knowledge_confusion"),
                                                                  ("overconfidence",), ()}
    summary = [as_read(b.label) for b in at.button if b.key and b.key.startswith("summary-")]
    assert summary == ["overconfidence · 2", "knowledge_confusion · 1"]

    at.multiselect(key="finding_filter").set_value(["knowledge_confusion"]).run()
    assert shown() == {a}
    at.multiselect(key="finding_filter").set_value(["knowledge_confusion", "no findings"]).run()
    assert shown() == {a, c}
    at.multiselect(key="finding_filter").set_value([]).run()
    at.slider(key="min_gates").set_value(5).run()
    assert shown() == {a, c}
    at.slider(key="min_gates").set_value(0).run()
    next(b for b in at.button if b.key == "summary-overconfidence").click().run()  # the summary filters too
    assert at.multiselect(key="finding_filter").value == ["overconfidence"]
    assert shown() == {a, b}


def test_studies_filters_keep_their_choice_when_a_new_kind_of_study_appears(store) -> None:
    """A filter's options come from the store; when they change, the reader's choice must stay."""
    uri, _ = store
    at = app().run()
    method = next(m for m in at.multiselect if m.label == "Method")
    method.set_value(["kd"]).run()
    Study(tiny_config("distill.method=dkd"), MlflowTracker(uri, "kd-explorer"), progress=False).run()
    st.cache_data.clear()  # as when the dashboard sees a study finish
    at.run()
    method = next(m for m in at.multiselect if m.label == "Method")
    assert method.options == ["dkd", "kd"] and method.value == ["kd"]
    assert len(at.dataframe[0].value) == 3


def test_study_detail_shows_findings_with_evidence_and_the_gates_checklist(study) -> None:
    uri, study_id = study
    diagnosed(uri, study_id, [OVERCONFIDENCE, CONFUSION, CAPACITY, DEGRADATION], passed=7)
    at = open_page("study", study=study_id)
    critical, capacity, degradation = [as_read(e.value) for e in at.error]
    assert "Teacher overconfidence amplification" in critical and "student acc 81.2%" in critical
    assert "student ece 3.1%" in critical and "Raise the temperature to 12." in critical
    (warning,) = [as_read(w.value) for w in at.warning]
    assert "Knowledge type confusion" in warning and "agreement 50.0%" in warning
    assert "drop points +5.0 pts" in capacity and "ratio 0.78" in degradation and "assistant 1 acc 70.0%" in degradation
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")][3:]
    assert titles == ["Mean predictive entropy (validation)", "Calibration error (ECE, validation)",
                      "KD loss against accuracy", "Validation accuracy by role",
                      "Accuracy along the chain (validation)"]
    relaunch = [b.key for b in at.button if b.label == "Relaunch with this fix"]
    assert relaunch == [f"relaunch-{study_id}-overconfidence", f"relaunch-{study_id}-capacity_mismatch"]
    gates = next(d.value for d in at.dataframe if "reason" in d.value)
    assert list(gates["gate"]) == list(range(1, 11))
    assert list(gates["status"]).count("passed") == 7 and list(gates["status"]).count("FAILED") == 3
    assert gates["numbers"][0] == "student over teacher 0.96, test acc 87.5%"
    assert any("7 of 10 passed" in m.value and "3 failed, 0 not measurable" in m.value for m in at.markdown)


def test_relaunch_with_a_fix_launches_the_fixed_config_or_explains_why_not(study) -> None:
    uri, study_id = study
    diagnosed(uri, study_id, [CROSS_MODAL, OVERCONFIDENCE], passed=5)
    at = open_page("study", study=study_id)
    at.button(key=f"relaunch-{study_id}-cross_modal_failure").click().run()
    assert any("does not apply" in e.value and "no_such_key" in as_read(e.value) for e in at.error)
    assert launcher.list_jobs() == []  # nothing launched

    at.button(key=f"relaunch-{study_id}-overconfidence").click().run()
    assert not at.exception, at.exception
    (job,) = launcher.list_jobs()
    config = yaml.safe_load((job.dir / "config.yaml").read_text())
    assert config["distill"]["temperature"] == 12
    assert config["tracking"]["study_name"].endswith(" + fix: overconfidence")
    assert any(job.job_id in t.value for t in at.toast)


def test_edit_the_fix_in_launch_prefills_the_form(study) -> None:
    uri, study_id = study
    diagnosed(uri, study_id, [OVERCONFIDENCE], passed=5)
    at = open_page("study", study=study_id)
    at.button(key=f"edit-fix-{study_id}-overconfidence").click().run()
    assert not at.exception, at.exception
    temperature = next(n for n in at.number_input if n.key.endswith("distill.temperature"))
    assert temperature.value == 12.0
    assert launcher.list_jobs() == []
    assert any("holds **the fix for" in c.value for c in at.caption)


def test_an_undiagnosed_study_can_be_diagnosed_from_the_page(study) -> None:
    uri, study_id = study
    artifacts = Path(urlparse(MlflowTracker(uri, "kd-explorer").client.get_run(study_id).info.artifact_uri).path)
    for name in ("findings.json", "gates.json"):  # as a study made before they were recorded
        (artifacts / name).unlink()
    at = open_page("study", study=study_id)
    assert any("Not diagnosed yet" in i.value for i in at.info)
    assert not any("reason" in d.value for d in at.dataframe)
    at.button(key="diagnose").click().run()
    assert not at.exception, at.exception
    gates = next(d.value for d in at.dataframe if "reason" in d.value)
    assert len(gates) == 10


def test_studies_shows_the_alerts_of_the_selected_studies(study) -> None:
    uri, study_id = study
    diagnosed(uri, study_id, [OVERCONFIDENCE], passed=5)
    at = app(selection=[study_id]).run()
    assert not at.exception, at.exception
    assert any("Findings of the selected studies" in s.value for s in at.subheader)
    assert any("Teacher overconfidence amplification" in e.value for e in at.error)
    assert f"relaunch-{study_id}-overconfidence" in [b.key for b in at.button]


def test_launch_offers_every_method_with_a_term_editor_for_multi(empty_store: str) -> None:
    at = open_page("launch")
    method = at.selectbox(key="form0.distill.method")
    assert set(method.options) == set(METHODS.names())
    method.set_value("multi").run()
    assert any("Terms of multi-level distillation" in m.value for m in at.markdown)
    assert not next(b for b in at.button if b.label == "Launch").disabled
    at.selectbox(key="form0.distill.method").set_value("at").run()  # the example's student is an MLP
    assert any("needs spatial features" in e.value for e in at.error)
    assert next(b for b in at.button if b.label == "Launch").disabled


MECHANISM_FIELDS = {"offline": set(),
                    "progressive": {"assistants", "stage_temperatures", "stage_params", "skip_to_teacher"},
                    "online": {"peers"}, "self": {"self_kind", "generations"},
                    "cross_modal": {"teacher_view", "student_view", "align", "align_epochs"}}


def test_every_mechanism_is_in_the_launch_test() -> None:
    assert set(MECHANISM_FIELDS) == set(MECHANISMS.names())


@pytest.mark.parametrize("mechanism", list(MECHANISM_FIELDS))
def test_launch_shows_each_mechanism_with_its_own_fields(empty_store: str, mechanism: str) -> None:
    at = open_page("launch")
    at.selectbox(key="form0.distill.mechanism").set_value(mechanism).run()
    assert not at.exception
    keys = {w.key.removeprefix("form0.distill.") for w in at.main if getattr(w, "key", None)
            and str(w.key).startswith("form0.distill.")}
    own = set().union(*MECHANISM_FIELDS.values()) | {"exit"}
    assert keys & own == MECHANISM_FIELDS[mechanism]
    teacher_shown = any(str(getattr(w, "key", "")).startswith("form0.teacher.") for w in at.main)
    assert teacher_shown == (mechanism in ("offline", "progressive", "cross_modal"))
    if mechanism == "self":  # spatial swaps the generations for the exit
        at.selectbox(key="form0.distill.self_kind").set_value("spatial").run()
        keys = {str(w.key) for w in at.main if getattr(w, "key", None)}
        assert "form0.distill.exit" in keys and "form0.distill.generations" not in keys


def test_launch_runs_an_online_study_from_the_form(empty_store: str) -> None:
    at = open_page("launch")
    at.selectbox(key="form0.distill.mechanism").set_value("online").run()
    assert any("peers" in e.value for e in at.error)  # online needs a peer: the form says so
    at.text_area(key="form0.distill.peers").set_value("[{name: mlp, width: 16, depth: 1}]").run()
    assert not at.error and not next(b for b in at.button if b.label == "Launch").disabled


MECHANISM_STUDIES = {
    "progressive": (["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16, depth: 1}]",
                     "distill.skip_to_teacher=true"], "The chain, every stage also taught by the teacher"),
    "online": (["distill.mechanism=online", "distill.peers=[{name: mlp, width: 16, depth: 1}]"], "Peers: best"),
    "born-again": (["distill.mechanism=self", "distill.generations=2"], "Born-again generations"),
    "exits": (["distill.mechanism=self", "distill.self_kind=spatial", "student.depth=2", "distill.exit=1"],
              "Exits of the self-distilled student"),
    "cross-modal": (["data.name=rgbd_scenes", "data.n_samples=600", "distill.mechanism=cross_modal",
                     "distill.align_epochs=1"], "RGB and depth, side by side"),
    "transformer chain": (["data.name=arithmetic", "data.n_samples=600", "distill.mechanism=progressive",
                           *(f"{role}.{key}" for role in ("teacher", "student")
                             for key in ("name=transformer", "width=16", "depth=1")),
                           "distill.assistants=[{name: transformer, width: 16, depth: 1}]"], "Attention maps"),
}


@pytest.mark.parametrize("kind", list(MECHANISM_STUDIES))
def test_study_detail_draws_what_each_mechanism_adds(empty_store: str, kind: str) -> None:
    overrides, heading = MECHANISM_STUDIES[kind]
    tracker = MlflowTracker(empty_store, "kd-explorer")
    study_id = Study(tiny_config(*overrides, "train.epochs=2"), tracker, progress=False).run().study_id
    at = open_page("study", study=study_id)
    assert any(h.value.startswith(heading) for h in at.subheader), [h.value for h in at.subheader]
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [f["layout"].get("title", {}).get("text", "") for f in figures]
    expected = {"progressive": "Accuracy along the chain", "online": "val/acc per epoch",
                "born-again": "Accuracy across born-again generations", "exits": "Exits: accuracy against cost",
                "cross-modal": "The same scenes, as the RGB camera", "transformer chain": "Where each position looks"}
    assert any(t.startswith(expected[kind]) for t in titles), titles
    if kind == "online":  # the peers' own chart, beside the page's curve of every role
        assert titles.count("val/acc per epoch") == 2



def test_launch_loads_an_example_config_into_the_form(empty_store: str) -> None:
    at = open_page("launch")
    picker = at.selectbox(key="launch-example")
    assert any(o.startswith("arithmetic_chain: Worked example 1") for o in picker.options)
    picker.select_index(next(i for i, o in enumerate(picker.options) if o.startswith("rgbd_cross_modal:"))).run()
    next(b for b in at.button if b.label == "Load example").click().run()
    assert not at.exception
    version = at.session_state["form_version"]
    assert at.selectbox(key=f"form{version}.distill.mechanism").value == "cross_modal"
    assert at.selectbox(key=f"form{version}.data.name").value == "rgbd_scenes"
    assert not at.error and not next(b for b in at.button if b.label == "Launch").disabled


def test_a_recipe_on_files_not_written_yet_is_one_line_in_launch(empty_store: str) -> None:
    at = open_page("launch")  # the working folder is empty: examples/byo/inputs/ does not resolve from it
    picker = at.selectbox(key="launch-example")
    picker.select_index(next(i for i, o in enumerate(picker.options) if o.startswith("byo/sensors_parquet:"))).run()
    next(b for b in at.button if b.label == "Load example").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["data.path: no file or folder 'examples/byo/inputs/sensors.parquet'"]


@pytest.mark.parametrize(("ratio", "shown"), [
    (4.0, ("Parameters saved", "4.0x fewer")), (0.3, ("Student is larger", "3.3x the teacher")),
    (float("nan"), ("Parameters saved", "-")),
])
def test_the_parameter_ratio_reads_the_right_way_round(ratio: float, shown: tuple[str, str]) -> None:
    from dashboard.text import parameters_saved

    assert parameters_saved(ratio) == shown

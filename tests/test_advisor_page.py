"""The Advisor page under AppTest, and its decision-tree figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.tree_chart import decision_tree
from kdcore.advisor import TREE, advise, parse_rationale

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def advisor_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("views/advisor.py").run()
    assert not at.exception, at.exception
    return at


def choose(at: AppTest, **values: str) -> AppTest:
    for key, value in values.items():
        at.selectbox(key=f"adv.{key}").set_value(value).run()
        assert not at.exception, at.exception
    return at


def test_large_cnn_to_tiny_mlp_on_mnist1d_is_progressive_and_opens_launch_prefilled(advisor_page: AppTest) -> None:
    at = choose(advisor_page, **{"dataset": "mnist1d", "teacher.model": "cnn1d", "teacher.size": "large",
                                 "student.model": "mlp", "student.size": "tiny"})
    assert [m.value for m in at.metric] == ["progressive", "response", "2", "4-8"]
    assert "65,098 parameters on mnist1d" in [c.value for c in at.caption]
    at.button[0].click().run()
    assert not at.exception, at.exception
    cfg = at.session_state["launch_config"]
    assert cfg["distill"]["mechanism"] == "progressive" and len(cfg["distill"]["assistants"]) == 2
    assert cfg["data"]["name"] == "mnist1d" and cfg["distill"]["rationale"].startswith("Advice: progressive")
    assert [t.value for t in at.title] == ["Launch a study"]
    assert at.selectbox(key=f"form{at.session_state['form_version']}.distill.mechanism").value == "progressive"
    assert at.selectbox(key="launch-example").value is None  # the form holds the advice, not an example
    assert any("The form below holds **the Advisor" in c.value for c in at.caption)


def test_advice_that_cannot_run_disables_launch_and_says_why(advisor_page: AppTest) -> None:
    at = advisor_page
    at.toggle(key="adv.peers").set_value(True).run()
    assert at.metric[0].value == "progressive"  # several learners beside a proven teacher learn from it
    at.toggle(key="adv.stable").set_value(False).run()  # ...a drifting domain makes them explore together
    assert at.metric[0].value == "online" and not at.button[0].disabled  # peers learn from each other's outputs
    at.multiselect(key="adv.needs").set_value(["patterns"]).run()  # ...but features cannot be exchanged
    assert at.button[0].disabled
    assert any("online mechanism exchanges outputs between peers" in c.value for c in at.caption)


def test_typed_accuracies_decide_the_gap_and_the_policy_is_shown(advisor_page: AppTest) -> None:
    at = advisor_page
    at.radio(key="adv.acc").set_value("typed in").run()
    at.number_input(key="adv.t_acc").set_value(0.9).run()
    at.number_input(key="adv.s_acc").set_value(0.8).run()
    assert not at.exception
    assert at.metric[0].value == "offline" and at.metric[2].value == "0"
    assert any("performance ratio (1.12x) decides" in i.value for i in at.info)
    at.number_input(key="adv.s_acc").set_value(0.85).run()  # 1.06x: step 1 alone would learn together
    assert at.metric[0].value == "offline"
    assert any("Step 1 alone would say collaborative learning (performance 1.06x" in i.value for i in at.info)


@pytest.mark.parametrize(("widget", "key", "value", "name"), [
    ("checkbox", "adv.real_time", True, "real_time"),
    ("text_input", "adv.teacher.task", "detection", "different_tasks"),
])
def test_a_boundary_says_do_not_distill_and_launch_waits_for_the_acknowledgement(
        advisor_page: AppTest, widget: str, key: str, value: object, name: str) -> None:
    at = advisor_page
    getattr(at, widget)(key=key).set_value(value).run()
    stop = [e.value for e in at.error]
    assert len(stop) == 1 and stop[0].startswith(f"**Do not distill** (`{name}`).") and "**Instead:**" in stop[0]
    launch = next(b for b in at.button if b.label == "Open Launch with this advice")
    assert launch.disabled and any("tick the acknowledgement" in c.value for c in at.caption)
    at.checkbox(key=f"adv.accept.{name}").check().run()
    launch = next(b for b in at.button if b.label == "Open Launch with this advice")
    assert not launch.disabled
    launch.click().run()
    assert not at.exception, at.exception
    cfg = at.session_state["launch_config"]
    assert cfg["distill"]["accepted_boundaries"] == [name]
    recorded = parse_rationale(cfg["distill"]["rationale"])
    assert recorded is not None and recorded.boundaries == recorded.accepted == [name]
    assert [t.value for t in at.title] == ["Launch a study"]


def test_tree_figure_lights_exactly_the_path() -> None:
    advice = advise({"teacher": {"params": 20_000}, "student": {"params": 1000}})
    figure = decision_tree([p.branch for p in advice.path])
    lit = next(t for t in figure.data if t.name == "path")
    assert len(lit.x) == 4 and "<b>Parameters 10x+</b>" in lit.text
    dim = next(t for t in figure.data if t.name == "branches")
    assert len(dim.x) == len(TREE) - 4
    thick = [t for t in figure.data if t.mode == "lines" and t.line.width == 4]
    assert len(thick) == 4 + 4  # each question down to its answer, and situation -> 1 -> 2 -> 3 -> 4


def test_a_language_model_chain_shows_what_each_stage_learns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Decision tree's language-model preset, opened in the Advisor: one row per stage with its temperature
    and terms, the same as the config it opens in Launch."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("views/learn_tree_walk.py").run()
    titles = [m.value for m in at.markdown if m.value.startswith("**")]
    preset = next(i for i, title in enumerate(titles) if "language model" in title)
    at.button(key=f"learn-tree-{preset}").click().run()
    at.switch_page("views/advisor.py").run()  # where the button went: AppTest stays on the page it was given
    assert not at.exception, at.exception
    stages = next(frame.value for frame in at.dataframe if "terms" in frame.value)
    next(b for b in at.button if b.label == "Open Launch with this advice").click().run()
    distill = at.session_state["launch_config"]["distill"]
    assert len(stages) == len(distill["assistants"]) + 1 >= 2
    assert stages["stage"].iloc[0].startswith("teacher →") and stages["stage"].iloc[-1].endswith("→ student")
    assert list(stages["temperature"]) == distill["stage_temperatures"]
    for row, params in zip(stages["terms"], distill["stage_params"], strict=True):
        assert [part.split(" ")[0] for part in row.split(", ")] == [term["term"] for term in params["terms"]]
    assert stages["terms"].iloc[0] != stages["terms"].iloc[-1]  # later stages also match hidden states

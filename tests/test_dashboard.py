"""Every dashboard page under Streamlit's AppTest, with an empty store and with example studies."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kdcore.study import Study
from kdcore.tracking import MlflowTracker
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


def test_compare_without_selection_explains_what_to_do(store) -> None:
    at = open_page("compare")
    assert any("Select two or more studies" in i.value for i in at.info)


def test_compare_draws_every_chart(store) -> None:
    _, ids = store
    at = open_page("compare", selection=ids)
    charts = at.get("plotly_chart")
    assert len(charts) == 6
    import json

    curves = json.loads(charts[0].proto.spec)
    names = [trace.get("name", "") for trace in curves["data"]]
    assert any("2 seeds" in n for n in names), names  # seeds 0 and 1 aggregate into one band
    assert len(at.dataframe) == 1  # the diff table: temperature and seed differ


def test_study_detail_shows_roles_and_config(store) -> None:
    _, ids = store
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

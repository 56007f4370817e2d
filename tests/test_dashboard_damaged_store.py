"""Every dashboard page over a store with damaged studies (tests/damaged_store.py): no page fails, each
says what is missing, and store text is shown as written, never as Markdown."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.damaged_store import INJECTION, DamagedStore, build_damaged_store

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["studies", "advisor", "launch", "compare", "study", "learn_soft_labels", "learn_gap", "learn_tree_walk",
         "learn_failure_modes", "learn_quality_gates"]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> DamagedStore:
    return build_damaged_store(tmp_path_factory.mktemp("damaged"))


@pytest.fixture
def store(damaged: DamagedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DamagedStore:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", damaged.uri)
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    return damaged


def open_page(page: str, **state) -> AppTest:
    """The page run once with ``state`` in the session; it must not fail."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page != "studies":  # the default page
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def shown(markdown: str) -> str:
    """What a reader sees of Markdown made by dashboard.text.md: escapes and word joiners removed."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def warnings(at: AppTest) -> list[str]:
    return [shown(w.value) for w in at.warning]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_over_the_damaged_studies(store: DamagedStore, page: str) -> None:
    state = {"selection": store.ids}  # Studies and Compare show the ticked studies
    open_page(page, **state, **({"study": store.missing} if page == "study" else {}))


def test_study_detail_without_config_and_with_a_roleless_run(store: DamagedStore) -> None:
    at = open_page("study", study=store.missing)
    found = warnings(at)
    assert any("it has no config.yaml" in w and "cannot be shown or opened in Launch" in w for w in found), found
    unknown = next(w for w in found if "1 run has no role (the kd.role tag)" in w)
    roles = list(at.dataframe[0].value["role"])
    assert roles[:2] == ["teacher", "baseline"] and roles[2].startswith("unknown-") and roles[2] in unknown
    assert not [c for c in at.code if "distill:" in c.value]  # no config shown, no Open in Launch
    assert not [b for b in at.button if b.label.startswith("Open in Launch")]


def test_study_detail_with_corrupt_findings_and_gates_offers_to_diagnose_again(store: DamagedStore) -> None:
    at = open_page("study", study=store.corrupt)
    found = warnings(at)
    assert any("its gates.json is not valid JSON" in w for w in found), found
    assert any("its findings.json is not valid JSON" in w for w in found), found
    assert [b.key for b in at.button if b.key == "diagnose"] == ["diagnose"]
    assert not any("Quality gates:" in m.value for m in at.markdown)


def test_study_detail_with_infinite_numbers_shows_them_as_missing(store: DamagedStore) -> None:
    at = open_page("study", study=store.odd_numbers)
    found = " ".join(warnings(at))
    for key in ("study/acc_ratio_teacher", "study/acc_ratio_baseline", "student model/params"):
        assert key in found
    assert [m.value for m in at.metric][1:3] == ["-", "-"]  # the ratios
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert curves["layout"]["title"]["text"] == "val/acc per epoch"
    assert all(np.isfinite(values(trace["y"])).all() for trace in curves["data"])


def values(array: list | dict) -> np.ndarray:
    """A plotly spec's array: a list, or a typed array (dtype and base64 bytes)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.array([np.nan if v is None else v for v in array], dtype=float)


def test_studies_with_a_corrupt_findings_file_selected(store: DamagedStore) -> None:
    at = open_page("studies", selection=[store.corrupt])
    found = warnings(at)
    assert any("its findings.json is not valid JSON" in w for w in found), found
    assert any("infinite values are shown as missing: study/acc_ratio_teacher" in w for w in found), found
    assert len(at.dataframe[0].value) == 3


def test_compare_with_every_damaged_study(store: DamagedStore) -> None:
    at = open_page("compare", selection=store.ids)
    drawn = {chart.key for chart in at.get("plotly_chart")}  # parallel coordinates: only for 3 studies that differ
    assert drawn >= {"curves", "grouped", "ratios", "frontier", "entropy", "reliability"}
    found = " ".join(warnings(at))
    assert "1 run has no role" in found and "infinite values are shown as missing" in found


def test_learn_quality_gates_on_a_corrupt_gates_file(store: DamagedStore) -> None:
    at = open_page("learn_quality_gates", **{"learn-gates-study": store.corrupt})
    assert any("its gates.json is not valid JSON" in w for w in warnings(at))


UNSAFE = re.compile(r"!\[|\]\(|://|www\.|<[a-z]", re.IGNORECASE)  # an image, a link, an address or HTML
CODE_SPAN = re.compile(r"`[^`]*`")  # literal: the page's own (the store's address, a finding's code)


def markdown_of(at: AppTest) -> list[str]:
    """Every text of the page that Streamlit renders as Markdown."""
    bodies = [e.value for kind in ("markdown", "caption", "warning", "error", "info", "success", "title",
                                   "subheader", "toast") for e in getattr(at, kind)]
    return [*bodies, *(m.label for m in at.metric), *(m.value for m in at.metric), *(b.label for b in at.button)]


@pytest.mark.parametrize("page", ["studies", "study", "learn_quality_gates"])
def test_store_text_is_never_rendered_as_markdown(store: DamagedStore, page: str) -> None:
    """The study named with a Markdown image, a link and bold text is named as written, and nothing else."""
    at = open_page(page, selection=[store.corrupt], study=store.corrupt, **{"learn-gates-study": store.corrupt})
    texts = markdown_of(at)
    assert any(INJECTION in shown(text) for text in texts)  # named where the page names it
    for text in texts:  # escaped Markdown has no link, image or address left once escapes are taken out
        assert not UNSAFE.search(CODE_SPAN.sub("", re.sub(r"\\.", "", text))), text

"""Launch's "my data" and "my model": paths under the data root only, and the study they make."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from streamlit.testing.v1 import AppTest

from dashboard.paths import PathRefused, under_root
from kdcore import launcher
from tests.test_dashboard import empty_store, open_page  # noqa: F401  (a fixture)

DIGITS_CNN = "examples.byo.models:DigitsCNN"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "root"
    (data / "images").mkdir(parents=True)
    (data / "weights.pt").write_bytes(b"")
    (tmp_path / "secret.csv").write_text("a,label\n1,0\n")
    monkeypatch.setenv("KDX_DATA_ROOT", str(data))
    return data


def test_a_path_under_the_root_resolves_to_its_absolute_form(root: Path) -> None:
    assert under_root("images", "data.path", kind="folder") == str(root / "images")
    assert under_root(str(root / "weights.pt"), "teacher.checkpoint", kind="file", suffixes=(".pt",)) == str(
        root / "weights.pt")


@pytest.mark.parametrize(("typed", "kind", "message"), [
    ("../secret.csv", "any", "data.path: '../secret.csv' is outside the data root"),
    ("/etc/passwd", "any", "data.path: '/etc/passwd' is outside the data root"),
    ("link", "any", "data.path: 'link' is outside the data root"),
    ("missing.csv", "any", "data.path: nothing at 'missing.csv'"),
    ("images", "file", "data.path: 'images' is not a file"),
    ("", "any", "data.path: give a path under"),
])
def test_a_path_outside_the_root_or_of_the_wrong_kind_is_refused(root: Path, typed: str, kind: str,
                                                                 message: str) -> None:
    (root / "link").symlink_to(root.parent / "secret.csv")
    with pytest.raises(PathRefused, match="^" + message.replace("(", r"\(")) as err:
        under_root(typed, "data.path", kind=kind)
    assert "\n" not in str(err.value)


def _launch_button(at: AppTest):
    return next(b for b in at.button if b.label == "Launch")


@pytest.mark.usefixtures("empty_store")
def test_my_model_panel_fills_the_config_and_refuses_a_checkpoint_outside_the_root(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    at = open_page("launch")
    next(t for t in at.toggle if t.label == "Use my own teacher").set_value(True).run()
    source = next(s for s in at.selectbox if s.key.endswith("own.teacher.name"))
    source.set_value("import").run()
    next(t for t in at.text_input if t.key.endswith("own.teacher.path")).input(DIGITS_CNN).run()
    next(t for t in at.text_input if t.key.endswith("own.teacher.kwargs")).input("{width: 8}").run()
    checkpoint = next(t for t in at.text_input if t.key.endswith("own.teacher.checkpoint"))
    checkpoint.input("../secret.csv").run()
    assert any("teacher.checkpoint: '../secret.csv' is outside the data root" in e.value for e in at.error)
    assert _launch_button(at).disabled
    from examples.byo.models import DigitsCNN

    torch.save(DigitsCNN(width=8).state_dict(), root / "teacher.pt")
    checkpoint.input("teacher.pt").run()
    next(c for c in at.checkbox if c.key.endswith("own.teacher.as_is")).check().run()
    assert [e.value for e in at.error] == []
    assert not _launch_button(at).disabled
    _launch_button(at).click().run()
    (job,) = launcher.list_jobs()
    launcher.cancel(job.job_id)
    teacher = yaml.safe_load((job.dir / "config.yaml").read_text())["teacher"]
    assert teacher == {"name": "import", "width": None, "depth": None, "path": DIGITS_CNN, "kwargs": {"width": 8},
                       "checkpoint": str(root / "teacher.pt"), "train": False}


@pytest.mark.usefixtures("empty_store")
def test_the_advisor_sizes_and_advises_a_hugging_face_teacher_of_yours(root: Path) -> None:
    from tests.hf_tiny import tiny_vit

    tiny_vit(root / "vit")
    at = open_page("advisor")
    next(t for t in at.toggle if t.key == "adv.own.teacher").set_value(True).run()
    next(s for s in at.selectbox if s.key == "adv.own.teacher.name").set_value("hf").run()
    path = next(t for t in at.text_input if t.key == "adv.own.teacher.path")
    path.input("../elsewhere").run()
    assert any("teacher.path: '../elsewhere' is outside the data root" in e.value for e in at.error)
    path.input("vit").run()
    assert not at.exception and [e.value for e in at.error] == []
    assert any("parameters, counted from its definition" in c.value for c in at.caption)
    assert any(m.label == "Mechanism" for m in at.metric)  # the advice is shown for the pair


@pytest.mark.usefixtures("empty_store", "root")
def test_my_data_shows_each_source_the_fields_it_registers() -> None:
    from kdcore.registry import DATASETS

    at = open_page("launch")
    next(t for t in at.toggle if t.label == "Use my own data").set_value(True).run()
    for name in ("csv", "imagefolder", "text"):
        next(s for s in at.selectbox if s.key.endswith("own.data.name")).set_value(name).run()
        keys = [w.key for kind in ("text_input", "number_input", "multiselect", "selectbox")
                for w in at.get(kind) if w.key and ".own.data." in w.key]
        shown = {key.rpartition(".")[2] for key in keys} - {"name"}
        assert shown == set(DATASETS.entry(name).meta["fields"]), name

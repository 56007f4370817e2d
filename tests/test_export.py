"""kdx export: a role's weights out of a study as safetensors, ONNX or a Hugging Face folder, rebuilt and checked,
registered in MLflow's Model Registry with its model card; bad input is one line and writes nothing."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from streamlit.testing.v1 import AppTest
from torch import nn

from kdcore.cli import main
from kdcore.config import ModelConfig
from kdcore.data.splits import load_dataset
from kdcore.export_error import ExportError
from kdcore.export_formats import onnx_session, write_hf
from kdcore.export_roles import rebuild, role_runs
from kdcore.models.base import build_model
from kdcore.study import Study, StudyFailed
from kdcore.tracking import MlflowTracker, load_predictions
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]
CNN = ("student.name=cnn2d", "student.width=8", "student.depth=1")


@dataclass
class Store:
    uri: str
    tracker: MlflowTracker
    mlp: list[str]  # seeds 0 and 1 of one study: seed siblings
    cnn: str  # a cnn2d student, one seed


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    torch.set_num_threads(1)
    uri = f"sqlite:///{tmp_path_factory.mktemp('export-store') / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "kd-explorer")
    mlp = [Study(tiny_config(f"train.seed={seed}"), tracker, progress=False).run().study_id for seed in (0, 1)]
    cnn = Study(tiny_config(*CNN), tracker, progress=False).run().study_id
    return Store(uri, tracker, mlp, cnn)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_id(store: Store, study_id: str, role: str) -> str:
    return role_runs(store.tracker, study_id)[role].run_id


def stored_predictions(store: Store, study_id: str, role: str = "student") -> np.ndarray:
    return load_predictions(run_id(store, study_id, role), store.uri)["test_probs"].argmax(1)


def test_safetensors_export_rebuilds_the_student_with_its_predictions(
        store: Store, here: Path, capsys: pytest.CaptureFixture) -> None:
    study_id = store.mlp[0]
    assert main(["export", study_id[:8], "--format", "safetensors", "--tracking-uri", store.uri]) == 0
    printed = capsys.readouterr().out
    folder = here / "exports" / f"{study_id[:8]}-student"
    assert f"to exports/{study_id[:8]}-student" in printed and "latency: " in printed
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "config.yaml", "model.json",
                                                        "model.safetensors"]
    spec = json.loads((folder / "model.json").read_text())
    assert spec["model_spec"] == "mlp-w8-d1" and spec["input_shape"] == [1, 8, 8] and spec["num_classes"] == 10
    assert spec["classes"] == [str(k) for k in range(10)] and spec["input_dtype"] == "float32"
    model = build_model(ModelConfig(**spec["model"]), tuple(spec["input_shape"]), spec["num_classes"])
    model.load_state_dict(load_file(folder / "model.safetensors"))  # a plain kdcore build takes the weights
    x = load_dataset(tiny_config().data).test.x
    with torch.inference_mode():
        predicted = model.eval()(x).logits.argmax(1).numpy()
        again = rebuild(folder)(x).logits.argmax(1).numpy()
    assert (predicted == stored_predictions(store, study_id)).all() and (again == predicted).all()
    card = (folder / "MODEL_CARD.md").read_text()
    assert "| student | mlp-w8-d1 |" in card and "| method | kd (response knowledge)" in card
    assert "over 2 seeds: mean ± 95% t-interval" in card and "Seeds 0, 1:" in card
    assert "| student / teacher |" in card and " ± " in card
    assert "## Quality gates:" in card and card.count("\n| ") >= 10 + 4  # the ten gates, and the other tables


def test_onnx_export_of_a_cnn_matches_pytorch_in_onnxruntime(
        store: Store, here: Path, capsys: pytest.CaptureFixture) -> None:
    out = here / "deploy" / "cnn"
    assert main(["export", store.cnn, "--format", "onnx", "--out", str(out), "--tracking-uri", store.uri]) == 0
    printed = capsys.readouterr().out
    assert "check: ONNX Runtime matches PyTorch on 270 of 270 test predictions" in printed
    session = onnx_session(out / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["inputs"] and session.get_inputs()[0].shape[0] == "batch"
    x = load_dataset(tiny_config().data).test.x.numpy()
    logits = session.run(["logits"], {"inputs": x})[0]
    assert (logits.argmax(1) == stored_predictions(store, store.cnn)).all()
    assert session.run(["logits"], {"inputs": x[:1]})[0].shape == (1, 10)  # any batch size
    card = (out / "MODEL_CARD.md").read_text()
    assert "| student | cnn2d-w8-d1 |" in card and "One seed: no finished study equals this one" in card
    assert "ONNX Runtime" in card and "ONNX check: ONNX Runtime matches PyTorch" in card


def test_register_adds_versions_that_point_at_the_artifacts_with_the_card(
        store: Store, here: Path, capsys: pytest.CaptureFixture) -> None:
    study_id = store.mlp[1]
    for _ in range(2):
        assert main(["export", study_id, "--format", "safetensors", "--register", "digits-student", "--force",
                     "--tracking-uri", store.uri]) == 0
    printed = capsys.readouterr().out
    assert "registered: digits-student version 1" in printed and "registered: digits-student version 2" in printed
    client = store.tracker.client
    card = (here / "exports" / f"{study_id[:8]}-student" / "MODEL_CARD.md").read_text()
    assert client.get_registered_model("digits-student").description.startswith("# digits-student\n")
    sources = set()
    for version in ("1", "2"):
        found = client.get_model_version("digits-student", version)
        assert found.run_id == study_id and found.description.startswith("# digits-student\n")
        assert "## Quality gates:" in found.description and "## Deployment" in found.description
        path = found.source.split("/artifacts/", 1)[1]
        assert path.startswith("export/safetensors/student-")
        names = {Path(a.path).name for a in client.list_artifacts(study_id, path)}
        assert names == {"MODEL_CARD.md", "config.yaml", "model.json", "model.safetensors"}
        sources.add(found.source)
    assert len(sources) == 2  # each version keeps its own files
    assert found.description == card  # the latest version's card is the folder's


BAD = [
    (["ffffffff", "--format", "onnx"], "study: no study 'ffffffff'"),
    (["{mlp}", "--format", "tflite"], "--format: unknown format 'tflite'; allowed: safetensors, onnx, hf"),
    (["{mlp}", "--role", "assistant_1", "--format", "onnx"],
     "--role: study {short} has no role 'assistant_1'; roles with weights: teacher, baseline, student"),
    (["{mlp}", "--format", "hf"], "--format: format hf needs a Hugging Face model (name hf); this student is "
                                  "mlp-w8-d1; allowed: safetensors, onnx"),
    (["{mlp}", "--format", "onnx", "--register", "a/b"], "--register: model name 'a/b' cannot contain '/' or ':'"),
    (["{mlp}", "--format", "onnx", "--out", "taken"], "--out: taken exists and is not empty; choose another folder"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
        store: Store, here: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    (here / "taken").mkdir()
    (here / "taken" / "keep.txt").write_text("mine")
    short = store.mlp[1][:8]
    before = sorted(here.rglob("*"))
    code = main(["export", *(a.replace("{mlp}", short) for a in args), "--tracking-uri", store.uri])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"kdx: error: export: {message.replace('{short}', short)}") and err.count("\n") == 1, err
    assert sorted(here.rglob("*")) == before


def test_a_failing_onnx_check_writes_nothing(store: Store, here: Path, capsys: pytest.CaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kdcore.export_formats.ONNX_TOLERANCE", -1.0)  # no difference can be within it
    assert main(["export", store.cnn, "--format", "onnx", "--tracking-uri", store.uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdx: error: export: --format: the ONNX export disagrees with PyTorch") and "nothing was " \
        "written" in err and err.count("\n") == 1
    assert list(here.iterdir()) == []  # not even the exports folder it made


def test_roles_without_weights_are_refused(store: Store, here: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = here / "teacher.safetensors"
    save_file(build_model(ModelConfig(name="mlp", width=32, depth=1), (1, 8, 8), 10).state_dict(), str(checkpoint))
    as_is = Study(tiny_config(f"teacher.checkpoint={checkpoint}", "teacher.train=false"), store.tracker,
                  progress=False).run().study_id
    finish = Study._finish_role

    def fail_student(self: Study, role: str, *args: object, **kwargs: object) -> object:
        if role == "student":
            raise RuntimeError("out of memory")
        return finish(self, role, *args, **kwargs)

    monkeypatch.setattr(Study, "_finish_role", fail_student)
    with pytest.raises(StudyFailed) as failed:
        Study(tiny_config("train.seed=7"), store.tracker, progress=False).run()
    for study_id, role, message in [
        (as_is, "teacher", f"--role: teacher of study {as_is[:8]} has no weights of its own: it used {checkpoint} "
                           "as it is (export that file instead); roles with weights: baseline, student"),
        (failed.value.study_id, "student", f"--role: student of study {failed.value.study_id[:8]} did not finish "
                                           "(FAILED), so it has no weights; roles with weights: teacher, baseline"),
    ]:
        assert main(["export", study_id, "--role", role, "--format", "safetensors", "--tracking-uri", store.uri]) == 2
        err = capsys.readouterr().err
        assert err == f"kdx: error: export: {message}\n"
    assert not (here / "exports").exists()


class SavesPretrained(nn.Linear):
    """Stands for a transformers PreTrainedModel: what format hf reads of it."""

    def save_pretrained(self, folder: str) -> None:
        save_file(self.state_dict(), str(Path(folder) / "model.safetensors"))
        (Path(folder) / "config.json").write_text('{"model_type": "stand-in"}')


class StandInHF(nn.Module):
    """The hf model source's contract: the transformers model is ``.net``, its tokenizer's folder ``tokenizer_path``."""

    def __init__(self, tokenizer_path: str) -> None:
        super().__init__()
        self.net, self.tokenizer_path = SavesPretrained(4, 2), tokenizer_path


def test_format_hf_saves_the_model_and_its_tokenizer(tmp_path: Path) -> None:
    from transformers import BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(str(tmp_path / "tokenizer"))
    out = tmp_path / "out"
    out.mkdir()
    assert write_hf(StandInHF(str(tmp_path / "tokenizer")), out, "student", "hf:tiny") == []
    saved = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= saved
    (tmp_path / "none").mkdir()
    notes = write_hf(StandInHF(str(tmp_path / "none")), tmp_path / "none", "student", "hf:tiny")
    assert len(notes) == 1 and notes[0].startswith("no tokenizer saved: ")  # the weights still go out
    with pytest.raises(ExportError, match="format hf needs a Hugging Face model"):
        write_hf(nn.Linear(2, 2), tmp_path, "student", "mlp-w8-d1")


@pytest.mark.skipif(importlib.util.find_spec("kdcore.models.hf") is None,
                    reason="kdcore.models.hf (the hf model source) is not in this checkout yet")
def test_hf_student_exports_as_a_folder_transformers_reloads(store: Store, here: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    from transformers import AutoModelForImageClassification, ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                                         num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                         num_labels=10)).save_pretrained(here / "vit")
    study_id = Study(tiny_config("student.name=hf", f"student.path={here / 'vit'}", "student.width=null",
                                 "student.depth=null"), store.tracker, progress=False).run().study_id
    assert main(["export", study_id, "--format", "hf", "--out", "hf", "--tracking-uri", store.uri]) == 0
    assert "note: no tokenizer saved" in capsys.readouterr().out  # an image model has none
    reloaded = AutoModelForImageClassification.from_pretrained(here / "hf").eval()
    x = load_dataset(tiny_config().data).test.x
    with torch.inference_mode():
        assert (reloaded(pixel_values=x).logits.argmax(1).numpy() == stored_predictions(store, study_id)).all()


def as_read(markdown: str) -> str:
    """Page text as a reader sees it: store text goes through dashboard.text.md (escapes, word joiners)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def test_study_page_exports_through_the_same_function(store: Store, here: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.session_state["study"] = store.mlp[0]
    at.run()
    at.switch_page("views/study.py").run()
    assert not at.exception, at.exception
    at.text_input(key="export-name").set_value("from-the-page")
    at.button(key="export").click().run()
    assert not at.error and "registered: from-the-page version 1" in as_read(at.success[0].value)
    assert (here / "exports" / f"{store.mlp[0][:8]}-student" / "model.safetensors").is_file()
    at.selectbox(key="export-format").set_value("hf")
    at.button(key="export").click().run()
    assert as_read(at.error[0].value) == ("--format: format hf needs a Hugging Face model (name hf); this student "
                                          "is mlp-w8-d1; allowed: safetensors, onnx")


def test_bench_export_smoke(store: Store, here: Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("bench_export", ROOT / "benchmarks" / "bench_export.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--smoke", "--study", store.cnn, "--tracking-uri", store.uri])
    assert set(results) == {1, 64} and all(row["ratio"] > 0 for row in results.values())
    assert "PyTorch / ONNX Runtime = " in capsys.readouterr().out

"""A model starts from a checkpoint (safetensors or a state dict); a teacher can be used as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kdcore import cli
from kdcore.config import ConfigError
from kdcore.data.splits import load_dataset
from kdcore.models.base import build_model
from kdcore.registry import DATASETS
from kdcore.study import Study
from kdcore.study_results import study_results
from kdcore.tracker import MemoryTracker
from kdcore.tracking import MlflowTracker, list_studies
from tests.helpers import TINY, tiny_config

TEACHER = ["teacher.name=mlp", "teacher.width=32", "teacher.depth=1"]


def digits_model(width: int = 32, seed: int = 7) -> torch.nn.Module:
    meta = DATASETS.entry("digits").meta
    torch.manual_seed(seed)
    spec = type("Spec", (), {"name": "mlp", "width": width, "depth": 1})()
    return build_model(spec, meta["input_shape"], meta["num_classes"])


def save(model: torch.nn.Module, path: Path) -> Path:
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path)) if path.suffix == ".safetensors" else torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_model_starts_from_its_checkpoint_in_either_format(tmp_path: Path, suffix: str) -> None:
    source = digits_model()
    cfg = tiny_config(*TEACHER, f"teacher.checkpoint={save(source, tmp_path / ('w' + suffix))}")
    loaded = build_model(cfg.teacher, DATASETS.entry("digits").meta["input_shape"], 10)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_teacher_used_as_it_is_is_evaluated_never_trained(tmp_path: Path) -> None:
    source = digits_model().eval()
    path = save(source, tmp_path / "teacher.safetensors")
    cfg = tiny_config(*TEACHER, f"teacher.checkpoint={path}", "teacher.train=false")
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    teacher = next(r for r in tracker.find_runs({"kd.study_id": summary.study_id}) if r.tags["kd.role"] == "teacher")
    assert teacher.tags["kd.weights"] == "checkpoint, as is"
    assert "train/loss" not in teacher.metrics  # no epoch ran
    test = load_dataset(cfg.data).test
    with torch.no_grad():
        accuracy = (source(test.x).logits.argmax(1) == test.y).float().mean().item()
    assert study_results(tracker, summary.study_id).metric("teacher", "test/acc") == pytest.approx(accuracy)


def test_a_trained_teacher_from_a_checkpoint_is_reused_only_with_the_same_weights(tmp_path: Path) -> None:
    path = tmp_path / "teacher.pt"
    save(digits_model(seed=1), path)
    first = tiny_config(*TEACHER, f"teacher.checkpoint={path}").teacher_fingerprint("v")
    assert tiny_config(*TEACHER, f"teacher.checkpoint={path}").teacher_fingerprint("v") == first
    save(digits_model(seed=2), path)  # other weights at the same path
    assert tiny_config(*TEACHER, f"teacher.checkpoint={path}").teacher_fingerprint("v") != first


@pytest.mark.parametrize(("overrides", "message"), [
    (["teacher.checkpoint=nowhere.pt"], "teacher.checkpoint: no file 'nowhere.pt'"),
    (["teacher.checkpoint=weights.txt"], "teacher.checkpoint: 'weights.txt' is not a checkpoint file; allowed: "
                                         ".safetensors, .pt, .pth, .bin"),
    (["teacher.train=false"], "teacher.train: false uses a model as it is, so it needs a checkpoint"),
    (["student.checkpoint=CKPT", "student.train=false"], "student.train: only a teacher is used as it is"),
])
def test_bad_checkpoint_fields_are_one_line_errors(tmp_path: Path, overrides: list[str], message: str) -> None:
    (tmp_path / "weights.txt").write_text("not weights")
    path = save(digits_model(width=8), tmp_path / "s.pt")
    overrides = [o.replace("weights.txt", str(tmp_path / "weights.txt")).replace("CKPT", str(path))
                 for o in overrides]
    with pytest.raises(ConfigError) as err:
        tiny_config(*TEACHER, *overrides)
    assert message.replace("'weights.txt'", repr(str(tmp_path / "weights.txt"))) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: digits_model(width=16), "teacher.checkpoint: w.pt does not fit model mlp: blocks.0.0.weight has shape "
                                     "(16, 64), the model's is (32, 64)"),
    (lambda: torch.nn.Linear(2, 2), "teacher.checkpoint: w.pt does not fit model mlp: missing keys blocks.0.0.bias, "
                                    "blocks.0.0.weight, head.bias (+1 more); unexpected keys bias, weight"),
])
def test_a_checkpoint_of_another_model_stops_the_study_before_anything_is_logged(
        tmp_path: Path, make, message: str, capsys: pytest.CaptureFixture) -> None:
    path = save(make(), tmp_path / "w.pt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "study.yaml"
    config.write_text("data:\n  name: digits\n")
    code = cli.main(["run", "--tracking-uri", uri, "--no-progress", str(config), *TINY, *TEACHER,
                     f"teacher.checkpoint={path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].endswith(message), err
    assert list_studies(uri).empty


def test_the_summary_says_where_the_weights_came_from(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = save(digits_model(), tmp_path / "t.safetensors")
    config = tmp_path / "study.yaml"
    config.write_text("data:\n  name: digits\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["run", "--tracking-uri", uri, "--no-progress", str(config), *TINY, *TEACHER,
                     f"teacher.checkpoint={path}", "teacher.train=false"]) == 0
    assert f"teacher weights from {path} (as is)" in capsys.readouterr().out
    (study,) = list_studies(uri).to_dict("records")
    params = MlflowTracker(uri, "kd-explorer").get_run(study["study_id"]).params
    assert params["teacher.checkpoint"] == str(path) and params["teacher.train"] == "False"


def test_a_file_that_is_no_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ConfigError, match=r"teacher.checkpoint: w.pt holds no state dict"):
        Study(tiny_config(*TEACHER, f"teacher.checkpoint={path}"), MlflowTracker(f"sqlite:///{tmp_path}/m.db",
                                                                                 "x"), progress=False).run()

"""Your own nn.Module as teacher or student: ``name: import``, features from forward hooks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdcore import cli
from kdcore.config import ConfigError
from kdcore.models.base import build_model
from kdcore.models.imported import ModuleSourceError, output_logits
from kdcore.study import Study
from kdcore.study_results import study_results
from kdcore.tracker import MemoryTracker
from kdcore.tracking import list_studies
from tests.helpers import TINY, tiny_config

CNN = ["teacher.name=import", "teacher.width=null", "teacher.depth=null", "teacher.path=tests.byo_models:small_cnn",
       "teacher.kwargs={width: 8}",
       "teacher.features={block1: conv1, block2: conv2, penultimate: pool}"]


def teacher_model(*overrides: str) -> torch.nn.Module:
    cfg = tiny_config(*CNN, *overrides)
    return build_model(cfg.teacher, (1, 8, 8), 10)


def test_an_imported_module_returns_logits_and_its_hooked_features() -> None:
    out = teacher_model()(torch.zeros(3, 1, 8, 8))
    assert out.logits.shape == (3, 10)
    assert {k: tuple(v.shape) for k, v in out.features.items()} == {
        "block1": (3, 8, 8, 8), "block2": (3, 16, 8, 8), "penultimate": (3, 16)}  # penultimate pooled to a vector


@pytest.mark.parametrize("factory", ["TupleOut", "DictOut", "small_cnn"])
def test_tuples_mappings_and_tensors_are_read_as_logits(factory: str) -> None:
    out = teacher_model(f"teacher.path=tests.byo_models:{factory}")(torch.zeros(2, 1, 8, 8))
    assert out.logits.shape == (2, 10)


def test_output_that_holds_no_logits_is_a_one_line_error() -> None:
    with pytest.raises(ModuleSourceError, match="return a tensor of logits"):
        output_logits({"scores": torch.zeros(1)})


@pytest.mark.parametrize("method", ["kd", "fitnet", "rkd", "at"])
def test_a_study_distils_between_imported_modules_with_every_kind_of_knowledge(method: str) -> None:
    student = [o.replace("teacher.", "student.").replace("width: 8", "width: 4") for o in CNN]
    tracker = MemoryTracker()
    summary = Study(tiny_config(*CNN, *student, f"distill.method={method}"), tracker, progress=False).run()
    results = study_results(tracker, summary.study_id)
    assert {"teacher", "baseline", "student"} <= results.metrics.keys()
    student_run = next(r.run_id for r in tracker.find_runs({"kd.study_id": summary.study_id})
                       if r.tags["kd.role"] == "student")
    terms = {key for run_id, key in tracker.history if run_id == student_run and key.startswith("train/loss_")}
    assert terms - {"train/loss_ce"}, terms  # the method's own term (kd, hint, rkd, at) was computed and logged
    for key in terms:
        assert all(torch.isfinite(torch.tensor(v)) for _, v in tracker.metric_history(student_run, key)), key


def imported(width: int) -> str:
    """An imported CNN of ``width`` as a YAML mapping (assistants, peers)."""
    return (f"{{name: import, path: 'tests.byo_models:small_cnn', kwargs: {{width: {width}}}, "
            "features: {block1: conv1, block2: conv2, penultimate: pool}}")


@pytest.mark.parametrize("mechanism", [
    ["distill.mechanism=progressive", f"distill.assistants=[{imported(6)}]"],
    ["distill.mechanism=online", f"distill.peers=[{imported(6)}]"],
    ["distill.mechanism=self", "distill.self_kind=temporal", "distill.generations=2"],
], ids=["progressive", "online", "self"])
def test_every_mechanism_trains_imported_modules(mechanism: list[str]) -> None:
    student = [o.replace("teacher.", "student.").replace("width: 8", "width: 4") for o in CNN]
    tracker = MemoryTracker()
    summary = Study(tiny_config(*CNN, *student, *mechanism), tracker, progress=False).run()
    roles = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": summary.study_id})}
    assert "student" in roles and all(r.status == "FINISHED" for r in roles.values())
    expected = {"progressive": "assistant_1", "online": "peer_1", "self": "generation_1"}[mechanism[0].split("=")[1]]
    assert any(role.startswith(expected.rpartition("_")[0]) for role in roles), roles.keys()


def test_an_imported_model_loads_a_checkpoint_of_its_own_keys(tmp_path: Path) -> None:
    from tests.byo_models import SmallCNN

    source = SmallCNN(10, 8)
    torch.save(source.state_dict(), tmp_path / "cnn.pt")
    loaded = teacher_model(f"teacher.checkpoint={tmp_path / 'cnn.pt'}")
    assert torch.equal(loaded.net.fc.weight, source.fc.weight)


@pytest.mark.parametrize(("overrides", "message"), [
    (["teacher.path=tests.nowhere:small_cnn"], "teacher.path: cannot import module 'tests.nowhere'"),
    (["teacher.path=tests.byo_models:missing"], "teacher.path: module 'tests.byo_models' has no 'missing'"),
    (["teacher.path=tests.byo_models:not_a_module"], "teacher.path: tests.byo_models:not_a_module returned str"),
    (["teacher.path=tests.byo_models:broken"], "teacher.path: tests.byo_models:broken(**kwargs) failed: "
                                               "RuntimeError: the factory itself fails"),
    (["teacher.features={penultimate: nowhere}"], "teacher.features.penultimate: the module has no submodule "
                                                 "'nowhere'"),
])
def test_a_module_that_cannot_be_built_stops_the_study_before_anything_is_logged(
        tmp_path: Path, overrides: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "study.yaml"
    config.write_text("data:\n  name: digits\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = cli.main(["run", "--tracking-uri", uri, "--no-progress", str(config), *TINY, *CNN, *overrides])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert list_studies(uri).empty


def test_a_feature_method_names_the_module_that_cannot_be_built() -> None:
    with pytest.raises(ConfigError, match=r"^teacher.path: cannot import module 'tests.nowhere'"):
        tiny_config(*CNN, "teacher.path=tests.nowhere:small_cnn", "distill.method=fitnet")


@pytest.mark.parametrize(("overrides", "message"), [
    (["teacher.name=import", "teacher.width=null", "teacher.depth=null"],
     "teacher.path: model import needs one: name the factory as package.module:callable"),
    ([*CNN, "teacher.path=not a path"], "teacher.path: name the factory as package.module:callable"),
    (["teacher.path=tests.byo_models:small_cnn"],
     "teacher.path: only a model source takes it (hf, import, timm, torchvision); mlp"),
    ([*CNN, "teacher.features={layer4: conv2}"], "teacher.features: 'layer4' is not a feature name"),
])
def test_bad_import_fields_are_one_line_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tiny_config(*overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_recipe_imports_its_module_from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from kdcore.config import load_config

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    cfg = load_config(root / "examples" / "byo" / "digits_import.yaml", ["train.epochs=1"])
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    assert {"teacher", "baseline", "student"} <= study_results(tracker, summary.study_id).metrics.keys()

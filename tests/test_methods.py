"""Methods over loss terms: gradients, adapters, the teacher cache, and configs that cannot work."""

from __future__ import annotations

import pytest
import torch

from kdcore.config import ConfigError
from kdcore.data.splits import load_dataset
from kdcore.methods.base import Batch, TeacherSource, build_method
from kdcore.models.base import build_model, count_parameters
from kdcore.registry import METHODS
from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

CNN = ["teacher.name=cnn2d", "teacher.width=8", "teacher.depth=2", "student.name=cnn2d", "student.width=4",
       "student.depth=2"]
DISTILLING = [m for m in METHODS.names() if m != "none"]


def setup(method: str, *overrides: str):
    cfg = tiny_config(*CNN, f"distill.method={method}", *overrides)
    splits = load_dataset(cfg.data)
    teacher = build_model(cfg.teacher, splits.input_shape, splits.num_classes)
    student = build_model(cfg.student, splits.input_shape, splits.num_classes)
    distiller = build_method(method, student, TeacherSource(teacher), cfg.distill, example=splits.train.x[:8])
    index = torch.arange(16)
    return cfg, splits, teacher, distiller, Batch(splits.train.x[:16], splits.train.y[:16], index)


@pytest.mark.parametrize("method", DISTILLING)
def test_gradients_reach_the_student_and_its_adapters_never_the_teacher(method: str) -> None:
    _, _, teacher, distiller, batch = setup(method)
    out = distiller.step(batch)
    assert "ce" in out.losses and len(out.losses) >= 2 and all(torch.isfinite(v) for v in out.losses.values())
    sum(out.losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in distiller.student.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    for adapter in distiller.adapters.values() if hasattr(distiller, "adapters") else []:
        assert any(p.grad is not None for p in adapter.parameters())


def test_fitnet_adapter_is_trained_but_not_deployed() -> None:
    cfg, _, _, distiller, _ = setup("fitnet")
    adapter_params = sum(p.numel() for p in distiller.adapters.parameters())
    assert adapter_params > 0  # 4 student channels mapped onto 8 teacher channels
    assert count_parameters(distiller.student) + adapter_params == sum(
        p.numel() for p in distiller.trainable_parameters())
    summary = Study(cfg, MemoryTracker(), progress=False).run()
    assert summary.roles["student"]["model/params"] == count_parameters(distiller.student)


@pytest.mark.parametrize("method", ["fitnet", "at", "rkd", "multi"])
def test_cached_teacher_outputs_equal_the_live_teacher(method: str) -> None:
    cfg, splits, teacher, distiller, batch = setup(method)
    keys = distiller.teacher_keys()
    assert "logits" in keys and (method == "multi" or len(keys) >= 2)
    study = Study(cfg, MemoryTracker(), progress=False)
    study.splits = splits
    cache = study.teacher_cache(distiller.teacher, keys)
    assert cache is not None and set(cache) == keys and all(len(v) == len(splits.train.y) for v in cache.values())
    live = distiller.teacher.outputs(batch, keys)
    cached = TeacherSource(teacher, cache).outputs(batch, keys)
    for key in keys:
        torch.testing.assert_close(cached[key], live[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("overrides", "message"), [
    (["distill.method=at"], "distill.method: term at needs spatial features, but student model mlp"),
    (["distill.method=multi", "distill.params={terms: [{term: hint, student_layer: block9}]}"],
     "distill.params.terms.0: student model mlp has no feature 'block9'; available: last, block1, penultimate"),
    (["distill.method=multi", "distill.params={terms: [{term: nope}]}"], "distill.params.terms.0.term: unknown term"),
    (["distill.method=multi", "distill.params={terms: [{term: kd, student_layer: middle}]}"],
     "distill.params.terms.0.student_layer: 'middle' is not a feature name"),
    (["distill.method=multi", "distill.params={terms: [{term: attention_pattern}]}"],
     "distill.params.terms.0: term attention_pattern needs attention maps"),
    (["distill.method=dkd", "distill.params={beta: 8}"], "distill.params.beta: unknown key"),
    (["teacher.name=cnn2d", "distill.method=multi", "distill.params={terms: [{term: hint, student_layer: block1}]}"],
     "distill.params.terms.0: term hint maps the student's block1 (8,) onto the teacher's block1 (32, 4, 4)"),
])
def test_configs_that_cannot_work_are_one_line_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tiny_config(*overrides)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_multi_combines_all_three_knowledge_types_with_named_layers() -> None:
    terms = ("{terms: [{term: kd}, {term: hint, weight: 2, student_layer: block1}, "
             "{term: at, weight: 100, student_layer: last}, {term: rkd_distance, weight: 25}]}")
    _, _, _, distiller, batch = setup("multi", f"distill.params={terms}")
    out = distiller.step(batch)
    assert set(out.losses) == {"ce", "kd", "hint", "at", "rkd_distance"}
    assert distiller.layers[0][1] == ("block1", "block1") and distiller.layers[0][2] == ("block2", "block2")

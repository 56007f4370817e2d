"""The two worked examples as runnable recipes: tiny runs of their example configs, and the advisor's way in."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from kdcore import advisor
from kdcore.config import ConfigError, load_config
from kdcore.role_artifacts import ATTENTIONS
from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY_TRAIN = ["train.epochs=2", "train.threads=1", "train.device=cpu", "data.n_samples=600"]


def losses(run) -> set[str]:
    return {k.removeprefix("train/loss_") for k in run.metrics if k.startswith("train/loss_")}


def test_language_chain_recipe_runs_each_stage_with_its_own_terms_and_temperature() -> None:
    cfg = load_config(EXAMPLES / "arithmetic_chain.yaml", [
        *TINY_TRAIN, "teacher.width=32", "teacher.depth=2", "distill.assistants=[{name: transformer, width: 16, "
        "depth: 2}]", "student.width=16"])
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    runs = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": summary.study_id})}
    assert set(runs) == {"study", "teacher", "baseline", "assistant_1", "student"}
    assert losses(runs["assistant_1"]) == {"ce", "kd", "attention_pattern"}  # stage 1: next token + attention
    assert losses(runs["student"]) == {"ce", "kd", "hint", "attention_pattern"}  # stage 2: + hidden states
    assert runs["assistant_1"].tags["kd.temperature"] == "2" and runs["student"].tags["kd.temperature"] == "1"
    for role, layers in (("teacher", 2), ("assistant_1", 2), ("student", 1)):
        with np.load(io.BytesIO(tracker.read_bytes(runs[role].run_id, ATTENTIONS))) as found:
            maps, inputs = found["maps"], found["inputs"]
        assert maps.shape[:2] == (layers, 8) and maps.shape[-2:] == (12, 12) and inputs.shape == (8, 12)
        assert np.allclose(maps.astype(np.float32).sum(-1), 1, atol=1e-2)  # attention rows are distributions
    student = summary.roles["student"]
    assert student["test/acc"] <= student["test/token_acc"] and "shift/acc" in student
    assert len(summary.gates) == 10 and summary.metrics["study/param_ratio"] > 1


def test_rgbd_recipe_aligns_first_and_its_unaligned_twin_reuses_the_teacher() -> None:
    tracker = MemoryTracker()
    tiny = [*TINY_TRAIN, "teacher.width=8", "teacher.depth=2", "student.width=4", "student.depth=2",
            "distill.align_epochs=1"]
    aligned = Study(load_config(EXAMPLES / "rgbd_cross_modal.yaml", tiny), tracker, progress=False).run()
    student = tracker.find_runs({"kd.study_id": aligned.study_id, "kd.role": "student"})[0]
    assert losses(student) == {"align", "ce", "kd", "at", "rkd_distance"}  # the advised terms, through alignment
    align = [v for _, v in tracker.metric_history(student.run_id, "train/loss_align")]
    assert len(align) == 2  # the alignment phase, then alignment as a term of distillation
    gate = next(g for g in aligned.gates if g.number == 8)  # the views are facts: the advice on them agrees
    assert gate.status == "passed" and "cross_modal" in gate.reason
    unaligned_cfg = load_config(EXAMPLES / "rgbd_cross_modal_unaligned.yaml", tiny[:-1])
    unaligned = Study(unaligned_cfg, tracker, progress=False).run()
    assert unaligned.teacher_reused_from is not None  # same teacher, same view: trained once
    assert len(unaligned.gates) == 10 and "unaligned" in unaligned.name


def test_the_advisor_reaches_both_recipes() -> None:
    language = advisor.advise({
        "dataset": "arithmetic", "needs": ["decisions", "structure"],
        "teacher": {"model": "transformer", "size": "large"}, "student": {"model": "transformer", "size": "small"}})
    assert language.mechanism == "progressive" and language.assistants and language.method == "multi"
    cfg = language.to_config()
    assert cfg.distill.stage_params[0]["terms"][1]["term"] == "attention_pattern"
    assert len(cfg.distill.stage_params) == len(cfg.distill.assistants) + 1
    sensors = advisor.advise({
        "dataset": "rgbd_scenes", "teacher": {"model": "cnn2d", "size": "medium", "modality": "rgb"},
        "student": {"model": "cnn2d", "size": "small", "modality": "depth"}})
    assert sensors.mechanism == "cross_modal"
    cfg = sensors.to_config()
    assert (cfg.distill.teacher_view, cfg.distill.student_view) == ("rgb", "depth")


def test_token_models_and_data_refuse_what_they_cannot_do() -> None:
    tokens = ["data.name=arithmetic", "data.n_samples=600", "teacher.name=transformer", "student.name=transformer",
              "teacher.width=16", "student.width=16", "teacher.depth=2", "student.depth=2"]
    with pytest.raises(ConfigError, match=r"^student\.name: spatial self-distillation puts exits on a block network"):
        tiny_config(*tokens, "distill.mechanism=self", "distill.self_kind=spatial")
    with pytest.raises(ConfigError, match=r"^teacher\.name: model mlp needs tensor inputs but dataset arithmetic gives "
                                          "tokens of shape"):
        tiny_config(*tokens, "teacher.name=mlp", "teacher.width=16", "teacher.depth=1")
    with pytest.raises(ConfigError, match=r"^distill\.stage_params: give one per stage"):
        tiny_config(*tokens, "distill.mechanism=progressive", "distill.method=multi",
                    "distill.assistants=[{name: transformer, width: 16, depth: 1}]",
                    "distill.stage_params=[{terms: [{term: kd}]}]")
    stage_two = r"^distill\.stage_params\.1\.terms\.0: teacher model transformer has no feature 'block2'"
    with pytest.raises(ConfigError, match=stage_two):  # the stage above the student is the 1-layer assistant
        tiny_config(*tokens, "distill.mechanism=progressive", "distill.method=multi",
                    "distill.assistants=[{name: transformer, width: 16, depth: 1}]",
                    "distill.stage_params=[{terms: [{term: kd}]}, {terms: [{term: hint, student_layer: block2}]}]")

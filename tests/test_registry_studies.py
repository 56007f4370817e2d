"""Every registered dataset, model and method through a one-epoch tiny study."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from kdcore.data.splits import load_dataset
from kdcore.models.base import ModelOutput, build_model
from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS
from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

DATASET_OVERRIDES = {"mnist1d": ["data.n_samples=600"]}


def fitting_models(dataset: str) -> list[str]:
    rank = len(DATASETS.entry(dataset).meta["input_shape"])
    return [m for m in MODELS.names() if MODELS.entry(m).meta.get("input_rank") in (None, rank)]


@pytest.mark.parametrize("dataset", DATASETS.names())
def test_dataset_splits_are_disjoint_stratified_and_shifted(dataset: str) -> None:
    cfg = tiny_config(f"data.name={dataset}", *DATASET_OVERRIDES.get(dataset, []))
    splits = load_dataset(cfg.data)
    meta = DATASETS.entry(dataset).meta
    assert splits.input_shape == tuple(meta["input_shape"]) and splits.num_classes == meta["num_classes"]
    for split in (splits.train, splits.val, splits.test, splits.test_shifted):
        assert split.x.shape[1:] == splits.input_shape and split.x.dtype == torch.float32
        assert set(split.y.unique().tolist()) == set(range(splits.num_classes))
    rows = {tuple(x.flatten().tolist()) for x in splits.train.x}
    assert not any(tuple(x.flatten().tolist()) in rows for x in splits.test.x)
    assert not torch.equal(splits.test_shifted.x[: len(splits.test)], splits.test.x[: len(splits.test_shifted)])
    again = load_dataset(cfg.data)  # fixed split seed -> same split (and the cache gives the same data)
    assert torch.equal(again.train.x, splits.train.x) and torch.equal(again.test.y, splits.test.y)


@pytest.mark.parametrize(("dataset", "model"), [(d, m) for d in DATASETS.names() for m in fitting_models(d)])
def test_model_returns_logits_and_named_features(dataset: str, model: str) -> None:
    cfg = tiny_config(f"data.name={dataset}", f"student.name={model}", *DATASET_OVERRIDES.get(dataset, []))
    shape = DATASETS.entry(dataset).meta["input_shape"]
    net = build_model(cfg.student, shape, 10)
    out = net(torch.randn(3, *shape))
    assert isinstance(out, ModelOutput) and out.logits.shape == (3, 10)
    assert "penultimate" in out.features and "block1" in out.features
    assert out.features["penultimate"].shape[0] == 3


@pytest.mark.parametrize(("dataset", "model", "method"), [
    (d, m, k) for d in DATASETS.names() for m in fitting_models(d) for k in METHODS.names()
])
def test_one_epoch_study(dataset: str, model: str, method: str) -> None:
    cfg = tiny_config(f"data.name={dataset}", f"teacher.name={model}", f"student.name={model}",
                      f"distill.method={method}", *DATASET_OVERRIDES.get(dataset, []))
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    assert set(summary.roles) == {"teacher", "baseline", "student"}
    for metrics in summary.roles.values():
        assert 0 <= metrics["test/acc"] <= 1 and math.isfinite(metrics["test/ece"])
        assert metrics["model/params"] > 0 and metrics["model/latency_ms"] > 0
    student_run = tracker.find_runs({"kd.study_id": summary.study_id, "kd.role": "student"})[0]
    assert student_run.tags["kd.method"] == method and student_run.status == "FINISHED"
    losses = {k for k in student_run.metrics if k.startswith("train/loss_")}
    assert losses == ({"train/loss_ce", "train/loss_kd"} if method == "kd" else {"train/loss_ce"})
    assert summary.metrics["study/acc_ratio_teacher"] > 0 and summary.metrics["study/param_ratio"] > 0


# What each mechanism needs beyond the tiny config; a new mechanism must add its line here.
MECHANISM_OVERRIDES = {"offline": [], "progressive": ["distill.assistants=[{name: mlp, width: 16, depth: 1}]"]}
MECHANISM_ROLES = {"offline": {"teacher", "baseline", "student"},
                   "progressive": {"teacher", "baseline", "assistant_1", "student"}}


def test_every_mechanism_has_a_tiny_study() -> None:
    assert set(MECHANISM_OVERRIDES) == set(MECHANISMS.names()) == set(MECHANISM_ROLES)


@pytest.mark.parametrize("mechanism", MECHANISMS.names())
def test_one_epoch_study_per_mechanism(mechanism: str) -> None:
    cfg = tiny_config(f"distill.mechanism={mechanism}", *MECHANISM_OVERRIDES[mechanism])
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    assert set(summary.roles) == MECHANISM_ROLES[mechanism]
    runs = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": summary.study_id})}
    assert all(run.status == "FINISHED" for run in runs.values())
    if mechanism == "progressive":  # each stage is measured against the stage that taught it
        probs = {role: np.load(io.BytesIO(tracker.read_bytes(runs[role].run_id, "predictions.npz")))["test_probs"]
                 for role in ("assistant_1", "student")}
        agreement = float((probs["assistant_1"].argmax(1) == probs["student"].argmax(1)).mean())
        assert summary.roles["student"]["test/agreement"] == pytest.approx(agreement)
        assert summary.cfg.distill.rationale is None and "progressive(1)" in summary.name

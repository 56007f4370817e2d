"""Every registered dataset, model and method through a one-epoch tiny study."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from kdcore.config import ConfigError
from kdcore.data.splits import load_dataset
from kdcore.models.base import ModelOutput, build_model
from kdcore.registry import DATASETS, MECHANISMS, METHODS, MODELS, inputs_of
from kdcore.registry import fitting_models as registry_fitting
from kdcore.study import Study
from kdcore.targets import IGNORE, scored_labels
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

DATASET_OVERRIDES = {d: ["data.n_samples=600"] for d in DATASETS.names() if DATASETS.entry(d).meta.get("generated")}
for _name in DATASET_OVERRIDES:  # token datasets need token models on both sides of the tiny config
    if inputs_of(_name) == "tokens":
        DATASET_OVERRIDES[_name] += [f"{role}.{key}" for role in ("teacher", "student")
                                     for key in ("name=transformer", "width=16", "depth=1")]
OFFLINE_DATASETS = [d for d in DATASETS.names()  # built in and offline: data sources have their own tests
                    if not DATASETS.entry(d).meta.get("downloads") and not DATASETS.entry(d).meta.get("source")]
# Every model meets every method on these; the first dataset of each other modality runs every method on
# its first model and every model with kd, and its siblings (same inputs, other labels) one kd study: each
# registry entry is covered without the whole cross product.
FULL_PRODUCT = {"digits", "mnist1d"}


def fitting_models(dataset: str, fixed: bool | None = None) -> list[str]:
    """Models that take the dataset's inputs; ``fixed`` picks named fixed-size variants (True) or the rest."""
    return [m for m in registry_fitting(dataset)
            if fixed is None or bool(MODELS.entry(m).meta.get("fixed_size")) == fixed]


def study_cases() -> list[tuple[str, str, str]]:
    cases, modalities = [], set()
    for d in OFFLINE_DATASETS:
        models = fitting_models(d, fixed=False)
        modality = DATASETS.entry(d).meta.get("modality")
        sibling = d not in FULL_PRODUCT and modality in modalities
        modalities.add(modality)
        for m in models:
            for k in METHODS.names():
                first, kd = m == models[0], k == "kd"
                wanted = (first and kd) if sibling else (d in FULL_PRODUCT or first or kd)
                if wanted and compatible(d, m, k):
                    cases.append((d, m, k))
    return cases


def random_inputs(dataset: str, n: int) -> torch.Tensor:
    """Inputs of the dataset's kind: token ids for token datasets, Gaussian noise otherwise."""
    meta = DATASETS.entry(dataset).meta
    if inputs_of(dataset) == "tokens":
        return torch.randint(0, meta["num_classes"], (n, *meta["input_shape"]))
    return torch.randn(n, *meta["input_shape"])


def as_role(role: str, model: str) -> list[str]:
    """Overrides that make ``model`` the role's model at its ``tiny`` size (fixed-size variants: their own)."""
    if MODELS.entry(model).meta.get("fixed_size"):
        return [f"{role}.name={model}", f"{role}.width=null", f"{role}.depth=null"]
    width, depth = MODELS.entry(model).meta["sizes"]["tiny"]
    return [f"{role}.name={model}", f"{role}.width={width}", f"{role}.depth={depth}"]


def compatible(dataset: str, model: str, method: str) -> bool:
    """Whether a config with ``model`` on both sides accepts ``method`` (spatial terms need spatial models)."""
    try:
        tiny_config(f"data.name={dataset}", *as_role("teacher", model), *as_role("student", model),
                    f"distill.method={method}", *DATASET_OVERRIDES.get(dataset, []))
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("dataset", OFFLINE_DATASETS)
def test_dataset_splits_are_disjoint_stratified_and_shifted(dataset: str) -> None:
    cfg = tiny_config(f"data.name={dataset}", *DATASET_OVERRIDES.get(dataset, []))
    splits = load_dataset(cfg.data)
    meta = DATASETS.entry(dataset).meta
    assert splits.input_shape == tuple(meta["input_shape"]) and splits.num_classes == meta["num_classes"]
    tokens = inputs_of(dataset) == "tokens"
    for split in (splits.train, splits.val, splits.test, splits.test_shifted):
        assert split.x.shape[1:] == splits.input_shape
        assert split.x.dtype == (torch.int64 if tokens else torch.float32)
        if tokens:  # targets per position, the unscored ones ignored
            assert split.y.shape == split.x.shape and (split.y != IGNORE).any(1).all()
            assert set(scored_labels(split.y).unique().tolist()) <= set(range(splits.num_classes))
        else:
            assert set(split.y.unique().tolist()) == set(range(splits.num_classes))
    rows = {tuple(x.flatten().tolist()) for x in splits.train.x}
    assert not any(tuple(x.flatten().tolist()) in rows for x in splits.test.x)
    assert not torch.equal(splits.test_shifted.x[: len(splits.test)], splits.test.x[: len(splits.test_shifted)])
    again = load_dataset(cfg.data)  # fixed split seed -> same split (and the cache gives the same data)
    assert torch.equal(again.train.x, splits.train.x) and torch.equal(again.test.y, splits.test.y)


@pytest.mark.parametrize(("dataset", "model"), [(d, m) for d in OFFLINE_DATASETS for m in fitting_models(d)])
def test_model_returns_logits_and_named_features(dataset: str, model: str) -> None:
    cfg = tiny_config(f"data.name={dataset}", *as_role("student", model), *DATASET_OVERRIDES.get(dataset, []))
    shape = DATASETS.entry(dataset).meta["input_shape"]
    net = build_model(cfg.student, shape, 10)
    out = net(random_inputs(dataset, 3).clamp_max(9))
    per_position = (3, *shape, 10) if inputs_of(dataset) == "tokens" else (3, 10)
    assert isinstance(out, ModelOutput) and out.logits.shape == per_position
    assert "penultimate" in out.features and "block1" in out.features
    assert out.features["penultimate"].shape[0] == 3


@pytest.mark.parametrize(("dataset", "model", "method"), study_cases())
def test_one_epoch_study(dataset: str, model: str, method: str) -> None:
    cfg = tiny_config(f"data.name={dataset}", *as_role("teacher", model), *as_role("student", model),
                      f"distill.method={method}", *DATASET_OVERRIDES.get(dataset, []))
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    assert set(summary.roles) == {"teacher", "baseline", "student"}
    for metrics in summary.roles.values():
        assert 0 <= metrics["test/acc"] <= 1 and math.isfinite(metrics["test/ece"])
        assert metrics["model/params"] > 0 and metrics["model/latency_ms"] > 0
    student_run = tracker.find_runs({"kd.study_id": summary.study_id, "kd.role": "student"})[0]
    assert student_run.tags["kd.method"] == method and student_run.status == "FINISHED"
    losses = {k.removeprefix("train/loss_") for k in student_run.metrics if k.startswith("train/loss_")}
    terms = METHODS.get(method).specs(_params(method)) if method != "none" else []
    assert losses == {"ce", *(spec.term for spec in terms)}
    assert student_run.tags["kd.knowledge"] == METHODS.get(method).knowledge
    assert summary.metrics["study/acc_ratio_teacher"] >= 0 and summary.metrics["study/param_ratio"] > 0
    if inputs_of(dataset) == "tokens":  # exact match per problem, and per-token numbers beside it
        for metrics in summary.roles.values():
            assert metrics["test/acc"] <= metrics["test/token_acc"] and metrics["test/perplexity"] >= 1


# What each mechanism needs beyond the tiny config; a new mechanism must add its line here.
MECHANISM_OVERRIDES = {"offline": [], "progressive": ["distill.assistants=[{name: mlp, width: 16, depth: 1}]"],
                       "online": ["distill.peers=[{name: mlp, width: 16, depth: 1}]"],
                       "self": ["distill.generations=2"],
                       "cross_modal": ["data.name=rgbd_scenes", "data.n_samples=600", "train.epochs=2",
                                       "distill.align_epochs=1"]}
MECHANISM_ROLES = {"offline": {"teacher", "baseline", "student"}, "cross_modal": {"teacher", "baseline", "student"},
                   "progressive": {"teacher", "baseline", "assistant_1", "student"},
                   "online": {"baseline", "student", "peer_1"},
                   "self": {"baseline", "generation_1", "student"}}


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
    assert set(runs) == MECHANISM_ROLES[mechanism] | {"study"}  # one nested run per role under the study
    assert all(run.tags["mlflow.parentRunId"] == summary.study_id for role, run in runs.items() if role != "study")
    if mechanism == "progressive":  # each stage is measured against the stage that taught it
        probs = {role: np.load(io.BytesIO(tracker.read_bytes(runs[role].run_id, "predictions.npz")))["test_probs"]
                 for role in ("assistant_1", "student")}
        agreement = float((probs["assistant_1"].argmax(1) == probs["student"].argmax(1)).mean())
        assert summary.roles["student"]["test/agreement"] == pytest.approx(agreement)
        assert summary.cfg.distill.rationale is None and "progressive(1)" in summary.name


def _params(method: str):
    cls = METHODS.get(method)
    return cls.Params() if hasattr(cls, "Params") else None


def test_a_named_variant_teaches_through_the_whole_study() -> None:
    """A fixed-size variant (here the smallest, resnet8) as the teacher: config, build, train, label."""
    cfg = tiny_config(*as_role("teacher", "resnet8"))
    summary = Study(cfg, MemoryTracker(), progress=False).run()
    assert summary.name.split()[1].startswith("resnet8->")
    assert summary.roles["teacher"]["model/params"] > summary.roles["student"]["model/params"]


@pytest.mark.parametrize("method", [m for m in METHODS.names() if m != "none"])
def test_incompatible_pairs_fail_at_validation_naming_the_field(method: str) -> None:
    """Every method either accepts an MLP pair, or says plainly why not, before anything trains."""
    try:
        tiny_config(f"distill.method={method}")
    except ConfigError as err:
        assert str(err).startswith("distill.method: term ") and "spatial" in str(err)


def test_each_stage_of_a_chain_distills_at_its_own_temperature() -> None:
    cfg = tiny_config("distill.mechanism=progressive", *MECHANISM_OVERRIDES["progressive"],
                      "distill.stage_temperatures=[8, 2]")
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    runs = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": summary.study_id})}
    assert runs["assistant_1"].tags["kd.temperature"] == "8" and runs["student"].tags["kd.temperature"] == "2"
    assert "kd.temperature" not in runs["baseline"].tags  # labels only: no temperature

"""Invariants the numbers of a study rest on.

- model selection: every role leaves training at its best validation epoch, not its last one;
- fair comparison: baseline and distilled student start alike; born-again generations do not;
- the teacher is frozen: eval mode, untouched batch-norm statistics, no gradient, however it is fed;
- the learning-rate schedule logs the values its formula gives, per role budget.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from kdcore import engine
from kdcore import study as study_module
from kdcore.config import ExperimentConfig
from kdcore.data.splits import DatasetSplits, load_dataset
from kdcore.engine import EpochReport, FitResult, fit, predict_logits, predict_outputs
from kdcore.methods.base import Batch, Method, TeacherSource, build_method
from kdcore.models.base import build_model
from kdcore.registry import METHODS
from kdcore.study import Study
from kdcore.tracker import STUDY_ROLE, MemoryTracker, RunRecord
from tests.helpers import tiny_config

CPU = torch.device("cpu")
# A constant, high learning rate makes validation accuracy go up and down, so the best epoch is not the last.
BUMPY = ["train.epochs=6", "train.lr=0.05", "train.schedule=constant"]
CNN = ["teacher.name=cnn2d", "teacher.width=8", "teacher.depth=2", "student.name=cnn2d", "student.width=4",
       "student.depth=2"]
DISTILLING = [name for name in METHODS.names() if METHODS.get(name).needs_teacher]


@functools.cache
def digits() -> DatasetSplits:
    return load_dataset(tiny_config().data)


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer (batch-norm statistics included)."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def val_acc(model: nn.Module, splits: DatasetSplits) -> float:
    logits = predict_logits(model, splits.val.x, CPU)
    return (logits.argmax(-1) == splits.val.y).float().mean().item()


class Interrupted(Exception):
    """Stands in for a crash in the middle of training."""


def train_alone(cfg: ExperimentConfig, model_cfg: object, seed: int = 0,
                checkpoint: Path | None = None, stop_after: int | None = None
                ) -> tuple[nn.Module, FitResult | None, list[float], list[dict[str, torch.Tensor]]]:
    """Train a fresh model on digits' labels with ``fit``; return it, the fit result, and the per-epoch
    validation accuracies and weights (as they were at the end of each epoch).

    ``stop_after`` interrupts training after that epoch (0-based), as a crash would; the result is then None.
    """
    splits = digits()
    torch.manual_seed(seed)
    model = build_model(model_cfg, splits.input_shape, splits.num_classes)
    history: list[float] = []
    states: list[dict[str, torch.Tensor]] = []

    def record(report: EpochReport) -> None:
        history.append(report.metrics["val/acc"])
        states.append(state_of(model))
        if report.epoch == stop_after:
            raise Interrupted

    method = build_method("none", model, None, cfg.distill)
    try:
        result = fit(method, splits, cfg.train, role="teacher", epochs=cfg.train.epochs, device=CPU,
                     callbacks=[record], checkpoint=checkpoint, progress=False)
    except Interrupted:
        return model, None, history, states
    return model, result, history, states


def role_runs(tracker: MemoryTracker, study_id: str) -> dict[str, RunRecord]:
    return {run.tags["kd.role"]: run for run in tracker.find_runs({"kd.study_id": study_id})
            if run.tags["kd.role"] != STUDY_ROLE}


def history(tracker: MemoryTracker, run: RunRecord, key: str) -> list[float]:
    return [value for _, value in tracker.metric_history(run.run_id, key)]


# --- (a) model selection: the best validation epoch, not the last ------------------------------------
def test_fit_leaves_the_model_at_its_best_validation_epoch() -> None:
    """``fit`` restores the weights of the epoch with the highest val/acc (the first such epoch on a tie)."""
    cfg = tiny_config(*BUMPY)
    model, result, accs, states = train_alone(cfg, cfg.teacher)
    best = accs.index(max(accs))
    assert best != len(accs) - 1, f"val/acc {accs} peaks in the last epoch: the test would prove nothing"
    assert result is not None and result.best_epoch == best and result.best_val_acc == max(accs)
    assert same_state(state_of(model), states[best])
    assert not same_state(state_of(model), states[-1])
    assert val_acc(model, digits()) == pytest.approx(max(accs), abs=1e-6)


def test_resumed_fit_still_returns_the_best_epoch_from_before_the_interruption(tmp_path: Path) -> None:
    """The best epoch so far travels in the checkpoint: a resumed run can still end at an epoch it did not train."""
    cfg = tiny_config(*BUMPY)
    _, _, accs, states = train_alone(cfg, cfg.teacher)
    best = accs.index(max(accs))
    stop = len(accs) - 2
    assert best < stop, f"val/acc {accs}: the best epoch must come before the interruption"
    checkpoint = tmp_path / "teacher.pt"
    train_alone(cfg, cfg.teacher, checkpoint=checkpoint, stop_after=stop)
    assert checkpoint.is_file()
    resumed, result, resumed_accs, _ = train_alone(cfg, cfg.teacher, checkpoint=checkpoint)
    # The resumed run trains only the epochs after the checkpoint (the interrupted one at most), and
    # retraces them exactly; the best epoch lies before them.
    assert 0 < len(resumed_accs) <= 2 and resumed_accs == accs[-len(resumed_accs):]
    assert best < len(accs) - len(resumed_accs)
    assert result is not None and result.best_epoch == best and result.best_val_acc == max(accs)
    assert same_state(state_of(resumed), states[best])


def test_every_role_reports_the_best_of_its_own_validation_curve() -> None:
    """Each role's val/best_acc (measured on the weights it keeps) is the maximum of its val/acc history."""
    tracker = MemoryTracker()
    summary = Study(tiny_config(*BUMPY), tracker, progress=False).run()
    runs = role_runs(tracker, summary.study_id)
    assert set(runs) == {"teacher", "baseline", "student"}
    peaked_early = []
    for role, run in runs.items():
        accs = history(tracker, run, "val/acc")
        assert len(accs) == 6
        assert run.metrics["val/best_acc"] == pytest.approx(max(accs), abs=1e-6), (role, accs)
        if accs.index(max(accs)) != len(accs) - 1:
            peaked_early.append(role)
    assert peaked_early, "every role peaked in its last epoch: best and last cannot be told apart"


# --- (b) who starts from which weights and sees which batches --------------------------------------
@dataclass
class Starts:
    """Per role: the student's weights when ``fit`` is called, and the first epoch's sample order."""

    weights: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    orders: dict[str, torch.Tensor] = field(default_factory=dict)


def watch_starts(monkeypatch: pytest.MonkeyPatch) -> Starts:
    """Record what each role starts from, by wrapping the study's ``fit`` and the engine's batch order."""
    starts, training = Starts(), []
    real_fit, real_order = study_module.fit, engine.batch_order

    def spy_fit(method: Method, splits: DatasetSplits, cfg: object, **kwargs: object) -> FitResult:
        role = str(kwargs["role"])
        starts.weights[role] = state_of(method.student)
        training.append(role)
        try:
            return real_fit(method, splits, cfg, **kwargs)
        finally:
            training.pop()

    def spy_order(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
        batches = real_order(n, batch_size, seed, epoch)
        if epoch == 0 and training:
            starts.orders.setdefault(training[-1], torch.cat(batches))
        return batches

    monkeypatch.setattr(study_module, "fit", spy_fit)
    monkeypatch.setattr(engine, "batch_order", spy_order)
    return starts


def test_baseline_and_offline_student_start_from_the_same_weights_and_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline is the student without distillation: same initial weights, same batch order."""
    starts = watch_starts(monkeypatch)
    Study(tiny_config(), MemoryTracker(), progress=False).run()
    assert {"teacher", "baseline", "student"} <= starts.weights.keys()
    assert same_state(starts.weights["baseline"], starts.weights["student"]), "baseline and student start apart"
    assert torch.equal(starts.orders["baseline"], starts.orders["student"]), "baseline and student see other batches"


def test_born_again_generations_start_from_their_own_weights_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generation k is seeded with offset k (logged as train.seed_offset): no two generations share their
    initial weights or their batch order, else a generation would retrace the one that teaches it."""
    starts = watch_starts(monkeypatch)
    tracker = MemoryTracker()
    summary = Study(tiny_config("distill.mechanism=self", "distill.self_kind=temporal", "distill.generations=2"),
                    tracker, progress=False).run()
    runs = role_runs(tracker, summary.study_id)
    generations = ["baseline", "generation_1", "student"]
    assert set(runs) == set(generations)
    for i, a in enumerate(generations):
        for b in generations[i + 1:]:
            assert not same_state(starts.weights[a], starts.weights[b]), f"{a} and {b} start from the same weights"
            assert not torch.equal(starts.orders[a], starts.orders[b]), f"{a} and {b} see the same batch order"
    for k, role in enumerate(generations):
        assert runs[role].params.get("train.seed_offset", "0" if k == 0 else None) == str(k), role


# --- (c) the teacher stays frozen while it teaches live -------------------------------------------
def trained_cnn_teacher() -> tuple[ExperimentConfig, nn.Module]:
    """A batch-norm teacher after one epoch of its own training, left in train mode as ``fit`` leaves it."""
    cfg = tiny_config(*CNN)
    teacher, _, _, _ = train_alone(cfg, cfg.teacher)
    teacher.train()
    return cfg, teacher


def batch_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_live_teacher_stays_in_eval_mode_with_unchanged_batch_norm_statistics() -> None:
    """A student trained on the teacher's live outputs (no cache) changes nothing in the teacher:
    every teacher forward runs in eval mode, and its weights and running statistics stay bit-identical."""
    cfg, teacher = trained_cnn_teacher()
    norms = batch_norms(teacher)
    assert norms and all(int(m.num_batches_tracked) > 0 for m in norms)  # statistics a train-mode pass would move
    before = state_of(teacher)
    modes: list[bool] = []
    teacher.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    splits = digits()
    torch.manual_seed(1)
    student = build_model(cfg.student, splits.input_shape, splits.num_classes)
    source = TeacherSource(teacher)  # cache None: the teacher runs on every batch
    method = build_method("kd", student, source, cfg.distill, example=splits.train.x[:8])
    assert source.cache is None
    fit(method, splits, cfg.train, role="student", epochs=2, device=CPU,
        progress=False)
    steps = 2 * -(-len(splits.train.y) // cfg.train.batch_size)
    assert len(modes) >= steps, "the teacher did not run on each batch: it was not taught live"
    after = state_of(teacher)
    for key in before:
        assert torch.equal(before[key], after[key]), f"teacher {key} changed while teaching"
    assert not any(modes), "the teacher ran in train mode"
    assert not teacher.training


def test_cached_and_live_outputs_of_a_batch_norm_teacher_agree() -> None:
    """The cache (computed once) and the live teacher give the same logits and features on a shuffled batch,
    for a teacher with trained batch-norm statistics that was in train mode when handed over."""
    cfg, teacher = trained_cnn_teacher()
    splits = digits()
    live = TeacherSource(teacher)
    keys = {"logits", "block1", "block2", "penultimate"}
    study = Study(cfg, MemoryTracker(), progress=False)
    study.splits = splits
    cache = study.teacher_cache(live, keys)
    assert cache is not None
    cached = TeacherSource(teacher, cache)
    index = torch.randperm(len(splits.train.y), generator=torch.Generator().manual_seed(0))[:64]
    batch = Batch(splits.train.x[index], splits.train.y[index], index)
    from_cache, from_live = cached.outputs(batch, keys), live.outputs(batch, keys)
    for key in keys:
        torch.testing.assert_close(from_live[key], from_cache[key], rtol=1e-4, atol=1e-5, msg=key)


# --- (d) teacher outputs carry no graph into the teacher -------------------------------------------
def leaves(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """Every leaf tensor the autograd graph of ``tensor`` would accumulate a gradient into."""
    seen: set[int] = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if hasattr(node, "variable"):
            yield node.variable
        stack.extend(next_node for next_node, _ in node.next_functions)


@pytest.mark.parametrize("cached", [False, True], ids=["live", "cached"])
@pytest.mark.parametrize("method", DISTILLING)
def test_teacher_outputs_are_detached_even_when_its_parameters_require_grad(method: str, cached: bool) -> None:
    """Freezing is not what keeps the teacher out of the graph: with requires_grad switched back on after the
    method is built, the teacher's outputs (cached or live) are still detached, the student's loss has no
    path into the teacher, and the teacher gets no gradient."""
    cfg = tiny_config(*CNN, f"distill.method={method}")
    splits = digits()
    torch.manual_seed(0)
    teacher = build_model(cfg.teacher, splits.input_shape, splits.num_classes)
    student = build_model(cfg.student, splits.input_shape, splits.num_classes)
    source = TeacherSource(teacher)
    assert not teacher.training, "TeacherSource left the teacher in train mode"
    assert not any(p.requires_grad for p in teacher.parameters()), "TeacherSource did not freeze the teacher"
    distiller = build_method(method, student, source, cfg.distill, example=splits.train.x[:8])
    if cached:
        source.cache = predict_outputs(teacher, splits.train.x, CPU, keys=distiller.teacher_keys())
    teacher.requires_grad_(True)
    teacher_params = {id(p) for p in teacher.parameters()}
    assert not teacher_params & {id(p) for p in distiller.trainable_parameters()}, "the teacher is trainable"
    index = torch.arange(32)
    batch = Batch(splits.train.x[index], splits.train.y[index], index)
    out = distiller.step(batch)
    loss = sum(out.losses.values())
    reached = {id(leaf) for leaf in leaves(loss)}
    assert reached & {id(p) for p in student.parameters()}, "the loss does not reach the student"
    assert not reached & teacher_params, "the student's loss has a graph path into the teacher"
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters()), "the teacher got a gradient"
    # The losses detach the teacher's side too; the source must not rely on that.
    for key, value in source.outputs(batch, distiller.teacher_keys()).items():
        for tensor in value if isinstance(value, list) else [value]:
            assert not tensor.requires_grad and tensor.grad_fn is None, f"teacher output {key} is not detached"


# --- (e) the learning-rate schedule -----------------------------------------------------------------
def cosine(lr: float, epochs: int) -> list[float]:
    """Cosine annealing per epoch, from ``lr`` in the first epoch towards 0 (never reached)."""
    return [lr * 0.5 * (1 + math.cos(math.pi * e / epochs)) for e in range(epochs)]


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_fit_logs_the_learning_rate_of_each_epoch(schedule: str) -> None:
    """train/lr of epoch e is the rate the epoch trained with: lr * (1 + cos(pi e / E)) / 2, or lr."""
    cfg = tiny_config("train.epochs=4", "train.lr=0.01", f"train.schedule={schedule}")
    logged: list[float] = []
    splits = digits()
    torch.manual_seed(0)
    method = build_method("none", build_model(cfg.student, splits.input_shape, splits.num_classes), None,
                          cfg.distill)
    fit(method, splits, cfg.train, role="baseline", epochs=4, device=CPU, progress=False,
        callbacks=[lambda report: logged.append(report.metrics["train/lr"])])
    expected = cosine(0.01, 4) if schedule == "cosine" else [0.01] * 4
    assert logged == pytest.approx(expected, rel=1e-12, abs=0)


def test_each_role_anneals_over_its_own_epoch_budget() -> None:
    """The teacher's cosine runs over teacher_epochs, the baseline's and student's over epochs."""
    tracker = MemoryTracker()
    summary = Study(tiny_config("train.epochs=2", "train.teacher_epochs=3", "train.lr=0.02"), tracker,
                    progress=False).run()
    runs = role_runs(tracker, summary.study_id)
    assert history(tracker, runs["teacher"], "train/lr") == pytest.approx(cosine(0.02, 3), rel=1e-12, abs=0)
    for role in ("baseline", "student"):
        assert history(tracker, runs[role], "train/lr") == pytest.approx(cosine(0.02, 2), rel=1e-12, abs=0)

"""The survey's fixes as features: label smoothing, several diverse teachers, ensembles of assistants."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from kdcore import study as study_module
from kdcore import targets
from kdcore.config import ConfigError
from kdcore.data.splits import load_dataset
from kdcore.losses import feature
from kdcore.mechanisms.online import MutualLearning
from kdcore.mechanisms.self_distill import ExitDistillation, MultiExit
from kdcore.methods.base import Batch, TeacherSource, build_method
from kdcore.methods.kd import KD
from kdcore.methods.terms import response_specs
from kdcore.models.base import build_model, count_parameters
from kdcore.models.ensemble import Ensemble
from kdcore.study import RoleResult, Study, StudyFailed
from kdcore.teaching import teacher_sources
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

SMOOTHING = 0.2
CNN_TEACHER = "distill.teachers=[{name: cnn2d, width: 8, depth: 2}]"
CHAIN = ["distill.mechanism=progressive", "distill.assistants=[{name: mlp, width: 16, depth: 1}]"]
LEARNS = ["train.epochs=2", "train.lr=0.01", "distill.alpha=0.5"]  # enough to move a tiny model off uniform


def runs_by_role(tracker: MemoryTracker, study_id: str) -> dict:
    return {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": study_id})}


def first_batch(n: int = 32) -> tuple[object, Batch]:
    splits = load_dataset(tiny_config().data)
    return splits, Batch(splits.train.x[:n], splits.train.y[:n], torch.arange(n))


def smoothed_ce(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Cross-entropy against the label mass 1 - eps on the class plus eps spread evenly over all K classes."""
    k = logits.shape[-1]
    target = torch.full_like(logits, eps / k)
    target[torch.arange(len(labels)), labels] += 1 - eps
    return -(target * logits.log_softmax(-1)).sum(-1).mean()


def test_smoothed_cross_entropy_is_the_hand_computed_value() -> None:
    logits, labels = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), torch.tensor([0, 1])
    p = logits.softmax(-1)  # by hand: (1 - eps) * -log p_y + eps * mean_k(-log p_k)
    by_hand = ((1 - SMOOTHING) * -p[[0, 1], [0, 1]].log() + SMOOTHING * -p.log().mean(-1)).mean()
    assert targets.cross_entropy(logits, labels, SMOOTHING).item() == pytest.approx(by_hand.item(), rel=1e-6)


def smoothed_methods(eps: float) -> dict[str, tuple[object, Batch, torch.Tensor, float]]:
    """Each kind of label loss of a student: (method, batch, the student's logits, weight of its ce)."""
    splits, batch = first_batch()
    shape, classes = splits.input_shape, splits.num_classes
    cfg = tiny_config(f"distill.label_smoothing={eps}", "distill.alpha=0.5")
    student = build_model(cfg.student, shape, classes)
    kd = build_method("kd", student, TeacherSource(build_model(cfg.teacher, shape, classes)), cfg.distill)
    alone = build_method("none", student, None, cfg.distill)
    peer = tiny_config("distill.mechanism=online", "distill.peers=[{name: mlp, width: 4}]",
                       f"distill.label_smoothing={eps}", "distill.alpha=0.5")
    online = MutualLearning(student, {"peer_1": build_model(peer.distill.peers[0], shape, classes)}, peer.distill,
                            response_specs(peer, "test"))
    spatial = tiny_config("distill.mechanism=self", "distill.self_kind=spatial", "student.depth=2",
                          f"distill.label_smoothing={eps}", "distill.alpha=0.5")
    exits = MultiExit(build_model(spatial.student, shape, classes), shape, classes, None)
    with torch.no_grad():  # confident students, so that smoothing visibly changes their loss
        for p in [*student.parameters(), *exits.parameters()]:
            p.mul_(3.0)
    own = ExitDistillation(exits, spatial.distill, response_specs(spatial, "test"))
    logits = student(batch.x).logits
    return {"kd": (kd, batch, logits, 0.5), "none": (alone, batch, logits, 1.0),
            "online": (online, batch, logits, 0.5), "self": (own, batch, exits.all_exits(batch.x)[-1], 1.0)}


@pytest.mark.parametrize("kind", ["kd", "none", "online", "self"])
def test_every_student_label_loss_is_smoothed(kind: str) -> None:
    method, batch, logits, weight = smoothed_methods(SMOOTHING)[kind]
    ce = method.step(batch).losses["ce"].item()
    assert ce == pytest.approx(weight * smoothed_ce(logits, batch.y, SMOOTHING).item(), rel=1e-5)
    assert ce != pytest.approx(weight * smoothed_ce(logits, batch.y, 0.0).item(), rel=1e-3)


def test_label_smoothing_softens_the_student_but_never_the_teacher_or_baseline() -> None:
    tracker = MemoryTracker()  # one store: the second study reuses the first one's teacher
    plain, smoothed = (Study(tiny_config(*LEARNS, f"distill.label_smoothing={eps}"), tracker, progress=False).run()
                       for eps in (0.0, SMOOTHING))
    assert smoothed.roles["student"]["val/entropy"] > plain.roles["student"]["val/entropy"]
    for key, value in plain.roles["baseline"].items():  # still the student trained alone, bit for bit
        assert key.startswith(("model/latency", "model/memory")) or smoothed.roles["baseline"][key] == value, key
    assert smoothed.teacher_reused_from is not None  # a teacher trains the same with or without smoothing


# --- several diverse teachers ----------------------------------------------------------------------
def two_teachers(method: str, *overrides: str) -> tuple[object, Batch, list, object]:
    cfg = tiny_config("teacher.name=cnn2d", "teacher.width=8", "teacher.depth=2", "student.name=cnn2d",
                      "student.width=4", "student.depth=2", "distill.teachers=[{name: cnn2d, width: 6, depth: 2}]",
                      "distill.temperature=2", f"distill.method={method}", *overrides)
    splits, batch = first_batch()
    teachers = [build_model(m, splits.input_shape, splits.num_classes).eval()
                for m in (cfg.teacher, cfg.distill.teachers[0])]
    student = build_model(cfg.student, splits.input_shape, splits.num_classes)
    distiller = build_method(method, student, TeacherSource(teachers[0]), cfg.distill, example=splits.train.x[:8],
                             more_teachers=[TeacherSource(teachers[1])], weights=[3, 1])
    return distiller, batch, teachers, cfg


def test_response_terms_learn_from_the_weighted_mean_of_the_softened_teachers() -> None:
    distiller, batch, teachers, _ = two_teachers("kd")
    with torch.no_grad():
        p1, p2 = (t(batch.x).logits.div(2).softmax(-1) for t in teachers)
    target = 0.75 * p1 + 0.25 * p2  # weights [3, 1], normalised
    logits = distiller.student(batch.x).logits
    expected = 4 * torch.nn.functional.kl_div(logits.div(2).log_softmax(-1), target, reduction="batchmean")
    assert distiller.step(batch).losses["kd"].item() == pytest.approx(0.9 * expected.item(), rel=1e-4)
    equal = 4 * torch.nn.functional.kl_div(logits.div(2).log_softmax(-1), (p1 + p2) / 2, reduction="batchmean")
    assert expected.item() != pytest.approx(equal.item(), rel=1e-3)  # so the weights really matter


def test_feature_terms_are_the_weighted_mean_over_teachers_each_with_its_own_adapter() -> None:
    distiller, batch, teachers, _ = two_teachers("fitnet")
    assert set(distiller.adapters) == {"0", "0@1"}  # 4 student channels onto 8 and onto 6
    out = distiller.student(batch.x)
    with torch.no_grad():
        hints = [feature.hint_mse(distiller.adapters[key](out.features[s_name]), t(batch.x).features[t_name])
                 for key, t, ((s_name, t_name),) in zip(("0", "0@1"), teachers, distiller.layers, strict=True)]
    weight = distiller.spec_list[0].weight
    assert distiller.step(batch).losses["hint"].item() == pytest.approx(
        weight * (0.75 * hints[0] + 0.25 * hints[1]).item(), rel=1e-4)  # a feature term: alpha not applied


def test_two_diverse_teachers_are_trained_and_both_teach_the_student() -> None:
    tracker = MemoryTracker()
    cfg = tiny_config(CNN_TEACHER, "distill.teacher_weights=[3, 1]")
    study = Study(cfg, tracker, progress=False)
    summary = study.run()
    runs = runs_by_role(tracker, summary.study_id)
    assert {"teacher", "teacher_2", "baseline", "student"} == set(summary.roles)
    assert runs["teacher"].status == runs["teacher_2"].status == "FINISHED"
    assert runs["teacher_2"].params["train.seed_offset"] == "1" and runs["teacher_2"].tags["kd.teacher_fingerprint"]
    assert runs["teacher_2"].tags["kd.teacher_fingerprint"] != runs["teacher"].tags["kd.teacher_fingerprint"]
    predictions = {role: np.load(io.BytesIO(tracker.read_bytes(runs[role].run_id, "predictions.npz")))["test_probs"]
                   for role in ("teacher", "teacher_2")}
    assert not np.allclose(predictions["teacher"], predictions["teacher_2"])
    assert runs["study"].tags["kd.teacher"] == "mlp-w32-d1+cnn2d-w8-d2"
    sources, shares = teacher_sources([study.roles["teacher"], study.roles["teacher_2"]], cfg.distill.teacher_weights)
    assert shares == [0.75, 0.25] and sources[1].model is study.roles["teacher_2"].model
    assert summary.metrics["study/teacher_acc"] == summary.roles["teacher"]["test/acc"]  # the teacher stays THE one


def test_a_resumed_study_keeps_its_finished_extra_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: KD, batch: Batch) -> None:
        raise RuntimeError("simulated crash")

    tracker = MemoryTracker()
    monkeypatch.setattr(KD, "step", crash)
    with pytest.raises(StudyFailed) as info:
        Study(tiny_config(CNN_TEACHER), tracker, progress=False).run()
    monkeypatch.undo()
    before = runs_by_role(tracker, info.value.study_id)
    assert before["teacher_2"].status == "FINISHED" and before["student"].status == "FAILED"
    trained: list[str] = []
    original = study_module.fit
    monkeypatch.setattr(study_module, "fit", lambda *args, **kwargs: trained.append(kwargs["role"]) or original(
        *args, **kwargs))
    Study.resume(info.value.study_id, tracker, progress=False).run()
    after = runs_by_role(tracker, info.value.study_id)
    assert trained == ["student"]  # the finished teachers and baseline are reloaded, not retrained
    roles = [r.tags["kd.role"] for r in tracker.find_runs({"kd.study_id": info.value.study_id})]
    assert sorted(roles) == ["baseline", "student", "study", "teacher", "teacher_2"]  # no second teacher_2 run
    assert after["teacher_2"].run_id == before["teacher_2"].run_id and after["student"].status == "FINISHED"


# --- an ensemble of assistants per stage -----------------------------------------------------------
def test_an_ensemble_teaches_through_each_member_at_the_students_temperature() -> None:
    splits, batch = first_batch()
    cfg = tiny_config()
    members = [build_model(cfg.teacher, splits.input_shape, splits.num_classes).eval() for _ in range(2)]
    teacher = build_model(cfg.teacher, splits.input_shape, splits.num_classes).eval()
    ensemble = RoleResult("assistant_1", "", Ensemble(members), {}, {})
    sources, shares = teacher_sources([ensemble, RoleResult("teacher", "", teacher, {}, {})], None)
    assert [s.model for s in sources] == [*members, teacher] and shares == [0.25, 0.25, 0.5]  # skip-to-teacher
    with torch.no_grad():  # deployed, the ensemble predicts the mean of its members' distributions
        mean = sum(m(batch.x).logits.softmax(-1) for m in members) / 2
        torch.testing.assert_close(Ensemble(members)(batch.x).logits.softmax(-1), mean)


def test_a_progressive_study_with_ensembles_trains_every_member_as_one_role_per_stage() -> None:
    tracker = MemoryTracker()
    cfg = tiny_config(*CHAIN, "distill.assistant_ensemble=2", "distill.skip_to_teacher=true",
                      "distill.stage_temperatures=[2, 3]")
    study = Study(cfg, tracker, progress=False)
    summary = study.run()
    runs = runs_by_role(tracker, summary.study_id)
    assert set(summary.roles) == {"teacher", "baseline", "assistant_1", "student"}
    assistant = study.roles["assistant_1"]
    assert isinstance(assistant.model, Ensemble) and len(assistant.model.members) == 2
    first, second = (dict(m.named_parameters()) for m in assistant.model.members)
    assert not torch.equal(first["head.weight"], second["head.weight"])  # members start from their own weights
    metrics = runs["assistant_1"].metrics
    assert {"member_1/val_acc", "member_2/val_acc", "member_1/test_acc", "member_2/test_acc"} <= set(metrics)
    assert metrics["model/params"] == 2 * count_parameters(assistant.model.members[0])  # the stage as deployed
    splits = study.splits
    with torch.no_grad():
        mean = sum(m.eval()(splits.test.x).logits.softmax(-1) for m in assistant.model.members) / 2
    assert metrics["test/acc"] == pytest.approx((mean.argmax(-1) == splits.test.y).float().mean().item())
    assert runs["assistant_1"].tags["kd.ensemble"] == "2" and "kd.ensemble" not in runs["student"].tags
    assert (runs["assistant_1"].tags["kd.temperature"], runs["student"].tags["kd.temperature"]) == ("2", "3")
    assert "ensembles of 2" in summary.name


# --- configs that cannot work ------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    ([CNN_TEACHER, "distill.teacher_weights=[1, 2, 3]"],
     "distill.teacher_weights: give one per teacher (2 here: the teacher, then distill.teachers)"),
    ([CNN_TEACHER, "distill.teacher_weights=[1, -1]"], "distill.teacher_weights: each must be > 0"),
    ([CNN_TEACHER, "distill.teacher_weights=[1, 0]"], "distill.teacher_weights: each must be > 0"),
    (["distill.mechanism=online", "distill.peers=[{name: mlp}]", CNN_TEACHER],
     "distill.teachers: only the offline mechanism uses it; leave it empty for online"),
    (["distill.mechanism=online", "distill.peers=[{name: mlp}]", "distill.teacher_weights=[1]"],
     "distill.teacher_weights: only the offline mechanism uses it"),
    ([CNN_TEACHER, "distill.method=none"], "distill.teachers: method none cannot learn from several teachers"),
    (["distill.teacher_weights=[2]", "distill.method=none"],
     "distill.teacher_weights: method none cannot learn from several teachers"),
    (["distill.teachers=[{name: mlp}, {name: mlp}, {name: mlp}, {name: mlp}, {name: mlp}]"],
     "distill.teachers: List should have at most 4 items"),
    (["distill.teachers=[{name: nope}]"], "distill.teachers.0.name: unknown model 'nope'"),
    (["distill.method=at", "teacher.name=cnn2d", "student.name=cnn2d", "distill.teachers=[{name: mlp}]"],
     "distill.teachers.0: term at needs spatial features, but teacher model mlp"),
    ([*CHAIN, "distill.assistant_ensemble=0"],
     "distill.assistant_ensemble: Input should be greater than or equal to 1"),
    ([*CHAIN, "distill.assistant_ensemble=6"], "distill.assistant_ensemble: Input should be less than or equal to 5"),
    (["distill.assistant_ensemble=2"], "distill.assistant_ensemble: only the progressive mechanism uses it"),
])
def test_invalid_fixes_are_one_line_errors_naming_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tiny_config(*overrides)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)

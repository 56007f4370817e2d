"""Failure-mode detectors and quality gates on hand-made study results, around their thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from kdcore import diagnostics as dx
from kdcore.config import apply_overrides, validate


def results(student: float = 0.90, baseline: float = 0.90, teacher: float = 0.95) -> dx.StudyResults:
    metrics = {
        role: {"test/acc": acc, "val/best_acc": acc, "val/entropy": 0.5, "val/ece": 0.05, "shift/acc": acc - 0.1,
               "model/params": params, "model/latency_ms": params / 1e4, "model/memory_mb": params / 1e5,
               "train/acc": acc + 0.02, "test/acc_class_0": 1.0, "test/acc_class_1": acc}
        for role, acc, params in (("teacher", teacher, 1e5), ("baseline", baseline, 1e4), ("student", student, 1e4))
    }
    params = {"data.name": "digits", "teacher.name": "mlp", "teacher.width": "256", "teacher.depth": "3",
              "student.name": "mlp", "student.width": "16", "student.depth": "1", "distill.mechanism": "offline",
              "distill.temperature": "4", "kd.knowledge": "response"}
    return dx.StudyResults(metrics, params, num_classes=10)


@pytest.mark.parametrize(("drop", "fires"), [(0.019, False), (0.02, False), (0.021, True)])
def test_capacity_mismatch_at_its_threshold(drop: float, fires: bool) -> None:
    finding = dx.capacity_mismatch(results(student=0.90 - drop))
    assert (finding is not None) == fires
    if finding:
        assert finding.evidence["drop_points"] == 2.1
        mechanism, assistants = finding.fix_overrides
        assert mechanism == "distill.mechanism=progressive"
        chain = yaml.safe_load(assistants.partition("=")[2])
        assert len(chain) == 1 and chain[0]["name"] == "mlp" and 16 < chain[0]["width"] < 256
        assert validate(apply_overrides({}, finding.fix_overrides)).distill.mechanism == "progressive"


def test_capacity_mismatch_in_a_chain_adds_one_more_assistant() -> None:
    r = results(student=0.85)
    r.params["distill.mechanism"] = "progressive"
    r.metrics["assistant_1"] = {"test/acc": 0.93}
    chain = yaml.safe_load(dx.capacity_mismatch(r).fix_overrides[1].partition("=")[2])
    assert len(chain) == 2 and chain[0]["width"] > chain[1]["width"]


def test_overconfidence_fix_never_suggests_a_temperature_below_4() -> None:
    r = results()
    r.params["distill.temperature"] = "0.5"
    r.metrics["student"]["val/entropy"] = 0.1
    assert dx.overconfidence(r).fix_overrides == ["distill.temperature=4"]


@pytest.mark.parametrize(("student_entropy", "fires"), [(0.49, True), (0.5, False), (0.51, False)])
def test_overconfidence_entropy_rule(student_entropy: float, fires: bool) -> None:
    r = results()
    r.metrics["student"]["val/entropy"] = student_entropy
    finding = dx.overconfidence(r)
    assert (finding is not None) == fires
    if finding:
        assert finding.severity == "critical" and finding.fix_overrides == ["distill.temperature=8"]


@pytest.mark.parametrize(("ece", "fires"), [(0.099, False), (0.101, True)])
def test_overconfidence_counts_a_miscalibrated_student_as_a_warning(ece: float, fires: bool) -> None:
    r = results()
    r.metrics["student"]["val/entropy"] = 0.8
    r.metrics["student"]["val/ece"] = ece
    finding = dx.overconfidence(r)
    assert (finding is not None) == fires
    if finding:
        assert finding.severity == "warning" and finding.evidence["student_ece"] == ece


@pytest.mark.parametrize(("student", "fires"), [(0.149, True), (0.15, True), (0.151, False)])
def test_cross_modal_failure_near_chance(student: float, fires: bool) -> None:
    assert (dx.cross_modal_failure(results(student=student, baseline=0.5)) is not None) == fires


def test_cross_modal_needs_a_good_teacher() -> None:
    assert dx.cross_modal_failure(results(student=0.1, teacher=0.19)) is None


@pytest.mark.parametrize(("assistant", "fires"), [(0.8549, True), (0.855, False), (0.86, False)])
def test_progressive_degradation_per_stage(assistant: float, fires: bool) -> None:
    r = results()
    r.metrics["assistant_1"] = {"test/acc": assistant}
    assert (dx.progressive_degradation(r) is not None) == fires


def _towards(target: np.ndarray, share: float) -> np.ndarray:
    """Probabilities ``share`` of the way from uniform to ``target`` (rows sum to 1)."""
    return (1 - share) * np.full_like(target, 1 / target.shape[1]) + share * target


def confusion_results(kl_ratio_share: float, curve: list[float], student: float = 0.901) -> dx.StudyResults:
    """Teacher, baseline and student test predictions; the student's KL to the teacher is set by the share."""
    teacher = np.tile([[0.8, 0.1, 0.1]], (10, 1))
    r = results(student=student)
    r.history = {"student": {"train/loss_kd": curve}}
    r.predictions = {"teacher": {"test_probs": teacher}, "baseline": {"test_probs": _towards(teacher, 0.2)},
                     "student": {"test_probs": _towards(teacher, kl_ratio_share)}}
    return r


def test_knowledge_confusion_rule_a_needs_convergence_a_closer_student_and_no_gain() -> None:
    r = confusion_results(0.6, [1.0, 0.3, 0.2])
    kl = {role: dx._kl(np.clip(r.predictions["teacher"]["test_probs"], 1e-12, 1),
                       np.clip(r.predictions[role]["test_probs"], 1e-12, 1)) for role in ("student", "baseline")}
    assert kl["student"] <= (1 - dx.KL_CLOSED) * kl["baseline"]
    finding = dx.knowledge_confusion(r)
    assert finding is not None and finding.evidence["kl_student"] == pytest.approx(kl["student"])
    assert dx.knowledge_confusion(confusion_results(0.6, [1.0, 0.5, 0.26])) is None  # not converged
    assert dx.knowledge_confusion(confusion_results(0.6, [1.0, 0.2], student=0.905)) is None  # gained 0.5 points
    assert dx.knowledge_confusion(confusion_results(0.6, [1.0, 0.2], student=0.87)) is None  # collapsed instead
    assert dx.knowledge_confusion(confusion_results(0.25, [1.0, 0.2])) is None  # barely closer than the baseline


@pytest.mark.parametrize(("closed", "fires"), [(0.29, False), (0.31, True)])
def test_knowledge_confusion_at_the_kl_closed_threshold(closed: float, fires: bool) -> None:
    r = confusion_results(0.6, [1.0, 0.2])
    teacher, baseline = (np.clip(r.predictions[k]["test_probs"], 1e-12, 1) for k in ("teacher", "baseline"))
    target = (1 - closed) * dx._kl(teacher, baseline)
    shares = np.linspace(0.2, 1.0, 4001)  # find the student whose KL is exactly at the target
    share = shares[np.argmin([abs(dx._kl(teacher, np.clip(_towards(teacher, s), 1e-12, 1)) - target)
                              for s in shares])]
    r.predictions["student"]["test_probs"] = _towards(teacher, share)
    assert (dx.knowledge_confusion(r) is not None) == fires


def test_knowledge_confusion_rule_b_matching_distribution_other_decisions() -> None:
    r = results(student=0.95)
    teacher = np.array([[0.5, 0.5 - 1e-3, 1e-3]] * 10)
    student = np.array([[0.5 - 1e-3, 0.5, 1e-3]] * 10)  # almost the same distribution, other top-1
    r.predictions = {"teacher": {"test_probs": teacher}, "student": {"test_probs": student}}
    finding = dx.knowledge_confusion(r)
    assert finding is not None and finding.evidence["agreement"] == 0.0


@pytest.mark.parametrize(("confidence", "fires"), [(0.95, True), (0.5, False)])
def test_overconfidence_warning_needs_confidence_above_accuracy(confidence: float, fires: bool) -> None:
    r = results()
    r.metrics["student"]["val/entropy"] = 0.8
    r.metrics["student"]["val/ece"] = 0.2
    labels = np.array([0, 1] * 5)
    probs = np.tile([[confidence, 1 - confidence]], (10, 1))  # always class 0: accuracy 0.5
    r.predictions = {"student": {"test_probs": probs, "test_labels": labels}}
    finding = dx.overconfidence(r)
    assert (finding is not None) == fires
    if finding:
        assert finding.evidence["student_overconfidence"] == pytest.approx(confidence - 0.5)


def test_healthy_study_has_no_findings_and_passes_its_gates() -> None:
    r = results(student=0.93, baseline=0.90)
    r.params["distill.rationale"] = "a proven teacher on fixed data"
    assert dx.detect(r) == []
    gates = {g.number: g for g in dx.evaluate_gates(r, [])}
    assert len(gates) == 10
    assert {n for n, g in gates.items() if g.status == "passed"} == {1, 2, 3, 4, 5, 6, 7, 8, 10}
    assert gates[9].status == "not measurable"
    assert gates[1].numbers["student_over_teacher"] == pytest.approx(0.93 / 0.95)


@pytest.mark.parametrize(("student", "status"), [(0.9024, "failed"), (0.9025, "passed")])
def test_accuracy_gate_at_95_percent_of_teacher(student: float, status: str) -> None:
    assert dx.gate_accuracy(results(student=student, baseline=0.9)).status == status


@pytest.mark.parametrize(("baseline", "status"), [(0.95 / 2.99, "passed"), (0.95 / 3.01, "failed")])
def test_capacity_gate_measures_the_teacher_against_the_student_trained_alone(baseline: float, status: str) -> None:
    assert dx.gate_capacity(results(student=0.9, baseline=baseline, teacher=0.95)).status == status


def test_capacity_gate_over_3x_needs_assistants() -> None:
    assert dx.gate_capacity(results(student=0.3, baseline=0.3, teacher=0.95)).status == "failed"
    r = results(student=0.3, baseline=0.3, teacher=0.95)
    r.metrics["assistant_1"] = {"test/acc": 0.6}
    gate = dx.gate_capacity(r)
    assert gate.status == "passed" and gate.numbers["largest_stage_ratio"] == pytest.approx(2.0)  # 0.6 / 0.3


def test_capacity_gate_reads_every_stage_of_the_chain() -> None:
    r = results(student=0.25, baseline=0.3, teacher=0.95)
    r.metrics["assistant_1"] = {"test/acc": 0.9}  # the assistant keeps up; the last stage bridges 3.6x
    gate = dx.gate_capacity(r)
    assert gate.status == "failed" and gate.numbers["largest_stage_ratio"] == pytest.approx(3.6)
    assert "still bridges over 3x" in gate.reason
    del r.metrics["teacher"]  # online and self studies have no teacher
    assert dx.gate_capacity(r).status == "not measurable"


def test_boundary_gate_reads_the_examples_the_teacher_misses() -> None:
    labels = np.array([0, 1, 0, 1])
    teacher = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.1, 0.9]])  # wrong on sample 1
    r = results()
    r.predictions = {"teacher": {"test_probs": teacher, "test_labels": labels},
                     "student": {"test_probs": np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.1, 0.9]])},
                     "baseline": {"test_probs": np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])}}
    gate = dx.gate_boundary(r)
    assert gate.status == "passed" and gate.numbers["student_acc"] > gate.numbers["baseline_acc"]


def test_missing_pieces_are_not_measurable_never_a_crash() -> None:
    r = dx.StudyResults({"teacher": {"test/acc": 0.9}})
    assert dx.detect(r) == []
    gates = dx.evaluate_gates(r, [])
    assert [g.status for g in gates].count("not measurable") == 9
    assert all(g.reason for g in gates if g.status == "not measurable")


@pytest.mark.parametrize(("teacher", "baseline", "mechanism", "status"), [
    (0.95, 0.80, "offline", "passed"),  # performance 1.19x: direct offline, as run
    (0.95, 0.55, "offline", "failed"),  # 1.73x calls for an assistant
    (0.95, 0.55, "progressive", "passed"),
])
def test_mechanism_gate_asks_the_advisor_when_no_rationale_is_recorded(
        teacher: float, baseline: float, mechanism: str, status: str) -> None:
    r = results(teacher=teacher, baseline=baseline, student=baseline)
    r.params["distill.mechanism"] = mechanism
    gate = dx.gate_mechanism(r)
    assert gate.status == status and gate.numbers["performance_ratio"] == pytest.approx(teacher / baseline)
    assert "advice" in gate.reason


def test_mechanism_gate_passes_on_a_recorded_rationale_and_is_not_measurable_without_models() -> None:
    r = results(teacher=0.95, baseline=0.55)
    r.params["distill.rationale"] = "chosen by hand"
    assert dx.gate_mechanism(r).status == "passed"
    r.params = {"distill.mechanism": "offline", "teacher.name": "no-such-model"}
    assert dx.gate_mechanism(r).status == "not measurable"


@pytest.mark.parametrize(("teacher_class", "student_class", "mastered", "status"), [
    (0.95, 0.8549, 2, "failed"),  # class 1 is mastered (>= 95%) and the student keeps under 90% of it
    (0.95, 0.8551, 2, "passed"),
    (0.9499, 0.5, 1, "passed"),  # class 1 is not mastered, so losing it does not count
])
def test_preservation_gate_on_mastered_classes(teacher_class: float, student_class: float, mastered: int,
                                               status: str) -> None:
    r = results()  # class 0: teacher 100%, student 100%
    r.metrics["teacher"]["test/acc_class_1"] = teacher_class
    r.metrics["student"]["test/acc_class_1"] = student_class
    gate = dx.gate_preservation(r)
    assert gate.status == status and gate.numbers["mastered_classes"] == mastered


@pytest.mark.parametrize(("student_right", "status"), [(7, "failed"), (8, "passed")])
def test_boundary_gate_allows_two_points_below_the_baseline(student_right: int, status: str) -> None:
    labels = np.zeros(100, dtype=int)
    wrong = np.tile([[0.1, 0.9]], (100, 1))  # the teacher misses all 100: every example is hard
    right = np.tile([[0.9, 0.1]], (100, 1))
    r = results()
    r.predictions = {"teacher": {"test_probs": wrong, "test_labels": labels},
                     "baseline": {"test_probs": np.vstack([right[:10], wrong[10:]])},  # 10%
                     "student": {"test_probs": np.vstack([right[:student_right], wrong[student_right:]])}}
    gate = dx.gate_boundary(r)
    assert gate.status == status and gate.numbers["examples"] == 100


@pytest.mark.parametrize("mechanism", ["online", "self"])
def test_mechanism_gate_needs_a_rationale_for_online_and_self(mechanism: str) -> None:
    r = results()
    r.params["distill.mechanism"] = mechanism
    gate = dx.gate_mechanism(r)
    assert gate.status == "not measurable" and "not something a study measures" in gate.reason
    r.params["distill.rationale"] = "several learners explore together"
    assert dx.gate_mechanism(r).status == "passed"


@pytest.mark.parametrize("mechanism", ["online", "self"])
def test_capacity_mismatch_without_a_teacher_offers_more_weight_on_the_labels(mechanism: str) -> None:
    r = results(student=0.80, baseline=0.90)
    r.params |= {"distill.mechanism": mechanism, "distill.alpha": "0.9"}
    finding = dx.capacity_mismatch(r)
    assert finding.fix_overrides == ["distill.alpha=0.45"] and "assistant" not in finding.fix

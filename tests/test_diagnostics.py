"""Failure-mode detectors and quality gates on hand-made study results, around their thresholds."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from kdcore import advisor
from kdcore import diagnostics as dx
from kdcore.config import apply_overrides, validate


def results(student: float = 0.90, baseline: float = 0.90, teacher: float = 0.95) -> dx.StudyResults:
    """Teacher, baseline and student with validation numbers (and test numbers 10 points off, which no rule
    may read)."""
    metrics = {
        role: {"val/best_acc": acc, "test/acc": acc - 0.1, "val/entropy": 0.5, "val/ece": 0.05, "shift/acc": acc - 0.1,
               "model/params": params, "model/latency_ms": params / 1e4, "model/memory_mb": params / 1e5,
               "train/acc": acc + 0.02, "val/acc_class_0": 1.0, "val/acc_class_1": acc}
        for role, acc, params in (("teacher", teacher, 1e5), ("baseline", baseline, 1e4), ("student", student, 1e4))
    }
    params = {"data.name": "digits", "teacher.name": "mlp", "teacher.width": "256", "teacher.depth": "3",
              "student.name": "mlp", "student.width": "16", "student.depth": "1", "distill.mechanism": "offline",
              "distill.method": "kd", "distill.temperature": "4.0", "distill.alpha": "0.9",
              "distill.accepted_boundaries": "[]", "kd.knowledge": "response"}
    return dx.StudyResults(metrics, params, num_classes=10)


def chain(r: dx.StudyResults, *accuracies: float) -> dx.StudyResults:
    """``r`` as a progressive study with one assistant per accuracy."""
    widths = [128 // 2 ** k for k in range(len(accuracies))]
    r.params |= {"distill.mechanism": "progressive",
                 "distill.assistants": str([{"name": "mlp", "width": w, "depth": 2} for w in widths])}
    for k, acc in enumerate(accuracies, start=1):
        r.metrics[f"assistant_{k}"] = {"val/best_acc": acc, "test/acc": 0.0}
    return r


def applies(r: dx.StudyResults, overrides: list[str]) -> bool:
    raw = dx.study_config(r)
    return raw is not None and validate(apply_overrides(copy.deepcopy(raw), overrides)) is not None


def test_the_config_is_rebuilt_from_its_params() -> None:
    r = chain(results(), 0.93)
    raw = dx.study_config(r)
    assert raw["distill"]["assistants"] == [{"name": "mlp", "width": 128, "depth": 2}]
    assert raw["distill"]["temperature"] == 4.0 and raw["distill"]["accepted_boundaries"] == []
    assert "kd" not in raw  # a tag, not a config section
    r.params["distill.mechanism"] = "no-such-mechanism"
    assert dx.study_config(r) is None


@pytest.mark.parametrize(("drop", "fires"), [(0.019, False), (0.02, False), (0.021, True)])
def test_capacity_mismatch_at_its_threshold(drop: float, fires: bool) -> None:
    finding = dx.capacity_mismatch(results(student=0.60 - drop, baseline=0.60, teacher=0.95))
    assert (finding is not None) == fires
    if finding:
        assert finding.evidence["drop_points"] == 2.1 and finding.evidence["gap_ratio"] == pytest.approx(0.95 / 0.6)
        mechanism, assistants = finding.fix_overrides
        assert mechanism == "distill.mechanism=progressive"
        (model,) = yaml.safe_load(assistants.partition("=")[2])
        assert model["name"] == "mlp" and 16 < model["width"] < 256
        assert applies(results(), finding.fix_overrides)


@pytest.mark.parametrize(("baseline", "fires"), [(0.95 / 1.49, False), (0.95 / 1.5, True)])
def test_capacity_mismatch_needs_a_gap_of_one_and_a_half(baseline: float, fires: bool) -> None:
    assert (dx.capacity_mismatch(results(student=baseline - 0.1, baseline=baseline)) is not None) == fires


def test_capacity_mismatch_in_a_chain_adds_one_more_assistant() -> None:
    r = chain(results(student=0.55, baseline=0.60), 0.93)  # the student's own teacher: 0.93 / 0.60 = 1.55x
    finding = dx.capacity_mismatch(r)
    (assistants,) = finding.fix_overrides  # already progressive: no mechanism override
    models = yaml.safe_load(assistants.partition("=")[2])
    assert len(models) == 2 and models[0]["width"] > models[1]["width"]


def test_overconfidence_fix_never_suggests_a_temperature_below_4() -> None:
    r = results()
    r.params["distill.temperature"] = "0.5"
    r.metrics["student"]["val/entropy"] = 0.1
    assert dx.overconfidence(r).fix_overrides == ["distill.temperature=4", "distill.label_smoothing=0.1",
                                                  "distill.alpha=0.2"]


@pytest.mark.parametrize(("alpha", "lowered"), [("0.9", True), ("0.2", False), ("0.1", False)])
def test_overconfidence_fix_gives_the_smoothed_labels_weight(alpha: str, lowered: bool) -> None:
    r = results()
    r.params["distill.alpha"] = alpha
    r.metrics["student"]["val/entropy"] = 0.1
    overrides = dx.overconfidence(r).fix_overrides
    assert ("distill.alpha=0.2" in overrides) == lowered and "distill.label_smoothing=0.1" in overrides


@pytest.mark.parametrize(("student_entropy", "fires"), [(0.49, True), (0.5, False), (0.51, False)])
def test_overconfidence_entropy_rule(student_entropy: float, fires: bool) -> None:
    r = results()
    r.metrics["student"]["val/entropy"] = student_entropy
    finding = dx.overconfidence(r)
    assert (finding is not None) == fires
    if finding:
        assert finding.severity == "critical" and finding.title == "Teacher overconfidence amplification"
        assert finding.fix_overrides[0] == "distill.temperature=8"


def miscalibrated(confidence: float, ece: float) -> dx.StudyResults:
    """A student far less calibrated than both others, always answering class 0 (validation accuracy 0.5)."""
    r = results()
    r.metrics["student"] |= {"val/entropy": 0.8, "val/ece": ece}
    r.predictions = {"student": {"val_probs": np.tile([[confidence, 1 - confidence]], (10, 1)),
                                 "val_labels": np.array([0, 1] * 5)}}
    return r


@pytest.mark.parametrize(("ece", "fires"), [(0.099, False), (0.101, True)])
def test_overconfidence_counts_a_miscalibrated_student_as_the_projects_warning(ece: float, fires: bool) -> None:
    finding = dx.overconfidence(miscalibrated(0.95, ece))
    assert (finding is not None) == fires
    if finding:
        assert finding.severity == "warning" and "project's rule" in finding.title
        assert finding.evidence["student_ece"] == ece


@pytest.mark.parametrize(("confidence", "fires"), [(0.95, True), (0.5, False)])
def test_overconfidence_warning_needs_confidence_above_accuracy(confidence: float, fires: bool) -> None:
    finding = dx.overconfidence(miscalibrated(confidence, 0.2))
    assert (finding is not None) == fires
    if finding:
        assert finding.evidence["student_overconfidence"] == pytest.approx(confidence - 0.5)


def test_overconfidence_warning_is_not_measurable_without_validation_predictions() -> None:
    r = miscalibrated(0.95, 0.2)
    r.predictions = {"student": {"test_probs": np.tile([[0.95, 0.05]], (10, 1)), "test_labels": np.array([0, 1] * 5)}}
    assert dx.overconfidence(r) is None  # the test split never decides which way it is miscalibrated


def cross_modal(student: float, baseline: float = 0.5, teacher: float = 0.95) -> dx.StudyResults:
    r = results(student=student, baseline=baseline, teacher=teacher)
    r.params |= {"data.name": "rgbd_scenes", "distill.mechanism": "cross_modal", "distill.align": "False",
                 "teacher.name": "cnn2d", "student.name": "cnn2d", "teacher.width": "32", "student.width": "16",
                 "teacher.depth": "3", "student.depth": "3"}
    return r


@pytest.mark.parametrize(("student", "fires"), [(0.149, True), (0.15, True), (0.151, False)])
def test_cross_modal_failure_near_chance(student: float, fires: bool) -> None:
    finding = dx.cross_modal_failure(cross_modal(student))
    assert (finding is not None) == fires
    if finding:
        assert finding.fix_overrides == ["distill.align=true"]


def test_a_fix_the_studys_config_refuses_is_not_offered() -> None:
    r = cross_modal(0.1)
    r.params["train.epochs"] = "1"  # no epoch left to align in
    finding = dx.cross_modal_failure(r)
    assert "distill.align=true" in finding.fix and finding.fix_overrides == []


def test_cross_modal_failure_needs_a_good_teacher_a_working_baseline_and_a_cross_modal_study() -> None:
    assert dx.cross_modal_failure(cross_modal(0.1, teacher=0.19)) is None
    assert dx.cross_modal_failure(cross_modal(0.1, baseline=0.19)) is None  # the same modality fails too
    offline = results(student=0.1, baseline=0.5)
    assert dx.cross_modal_failure(offline) is None


@pytest.mark.parametrize(("assistant", "fires"), [(0.8549, True), (0.855, False), (0.86, False)])
def test_progressive_degradation_per_stage(assistant: float, fires: bool) -> None:
    assert (dx.progressive_degradation(chain(results(student=0.85), assistant)) is not None) == fires


def test_progressive_degradation_checks_the_student_and_offers_skip_connections_from_stage_2() -> None:
    r = chain(results(student=0.70), 0.93)  # the student keeps 75% of its assistant
    finding = dx.progressive_degradation(r)
    assert finding.evidence["stage"] == 2 and finding.evidence["student_acc"] == 0.70
    assert finding.fix_overrides[0] == "distill.skip_to_teacher=true" and applies(r, finding.fix_overrides)


def test_progressive_degradation_at_the_first_stage_shortens_the_chain() -> None:
    r = chain(results(student=0.80), 0.80, 0.80)  # assistant_1 keeps 84% of the teacher
    finding = dx.progressive_degradation(r)
    assert finding.evidence["stage"] == 1 and "skip_to_teacher" not in " ".join(finding.fix_overrides)
    assert finding.fix_overrides[0] == "distill.assistants=[{name: mlp, width: 64, depth: 2}]"
    assert applies(r, finding.fix_overrides)
    single = chain(results(student=0.80), 0.80)  # without its only assistant the chain is direct distillation
    shorter = dx.progressive_degradation(single).fix_overrides
    assert shorter[:2] == ["distill.mechanism=offline", "distill.assistants=[]"]


def confused(student: float = 0.60, curve: tuple[float, ...] = (1.0, 0.2), teacher: float = 0.95,
             baseline: float = 0.60) -> dx.StudyResults:
    r = results(student=student, baseline=baseline, teacher=teacher)
    r.history = {"student": {"train/loss_kd": list(curve)}}
    return r


def test_knowledge_confusion_needs_a_converged_kd_term_and_a_student_without_the_teachers_knowledge() -> None:
    finding = dx.knowledge_confusion(confused())
    assert finding is not None and finding.severity == "warning" and "project's rule" in finding.title
    assert finding.fix_overrides == ["distill.method=multi"] and finding.evidence["kept_advantage"] == 0
    assert finding.sweep == {"distill.temperature": [1.0, 2.0, 8.0]}
    assert dx.knowledge_confusion(confused(curve=(1.0, 0.25))) is None  # not converged
    assert dx.knowledge_confusion(confused(student=0.58, baseline=0.58, teacher=0.58 * 1.09)) is None  # no gap


@pytest.mark.parametrize(("student", "fires"), [(0.7749, True), (0.775, False)])
def test_knowledge_confusion_until_the_student_gains_half_the_teachers_advantage(student: float, fires: bool) -> None:
    assert (dx.knowledge_confusion(confused(student=student)) is not None) == fires  # half of 0.60 -> 0.95


def sibling(temperature: float, student: float) -> dx.StudyResults:
    r = confused(student=student)
    r.params["distill.temperature"] = str(temperature)
    return r


@pytest.mark.parametrize(("best_other", "fires"), [(0.605, True), (0.6051, False)])
def test_knowledge_confusion_by_the_temperature_rule(best_other: float, fires: bool) -> None:
    siblings = [sibling(1.0, 0.59), sibling(8.0, best_other), sibling(4.0, 0.99)]  # the last: this temperature
    finding = dx.knowledge_confusion(confused(), siblings)
    assert (finding is not None) == fires
    if finding:
        assert finding.severity == "critical" and finding.title == "Knowledge type confusion"
        assert finding.evidence["other_temperatures"] == 2 and finding.sweep == {}


def test_one_other_temperature_leaves_the_rule_untested() -> None:
    finding = dx.knowledge_confusion(confused(), [sibling(1.0, 0.59)])
    assert finding.severity == "warning" and finding.sweep == {"distill.temperature": [2.0, 8.0]}


def test_knowledge_confusion_rule_b_matching_distribution_other_decisions() -> None:
    r = results(student=0.8, baseline=0.8)  # the teacher holds 1.19x: knowledge to give
    teacher = np.array([[0.5, 0.5 - 1e-3, 1e-3]] * 10)
    student = np.array([[0.5 - 1e-3, 0.5, 1e-3]] * 10)  # almost the same distribution, other top-1
    r.predictions = {"teacher": {"val_probs": teacher}, "student": {"val_probs": student}}
    finding = dx.knowledge_confusion(r)
    assert finding is not None and finding.evidence["agreement"] == 0.0
    r.predictions = {"teacher": {"test_probs": teacher}, "student": {"test_probs": student}}
    assert dx.knowledge_confusion(r) is None


def test_one_cause_one_finding() -> None:
    r = chain(results(student=0.40, baseline=0.60), 0.70)  # degraded chain, and a collapse below the baseline
    r.metrics["student"]["val/entropy"] = 0.1  # ... and more confident than the teacher
    assert [f.code for f in dx.detect(r)] == ["progressive_degradation"]
    del r.metrics["assistant_1"]
    r.params |= {"distill.mechanism": "offline", "distill.assistants": "[]"}
    assert [f.code for f in dx.detect(r)] == ["capacity_mismatch"]


def test_healthy_study_has_no_findings_and_passes_its_gates() -> None:
    r = results(student=0.93, baseline=0.90)
    r.params["distill.rationale"] = "a proven teacher on fixed data"
    assert dx.detect(r) == []
    gates = {g.number: g for g in dx.evaluate_gates(r, [])}
    assert len(gates) == 10
    assert {n for n, g in gates.items() if g.status == "passed"} == {1, 2, 3, 5, 6, 7, 8, 10}
    assert gates[4].status == gates[9].status == "not measurable"
    assert gates[1].numbers["student_over_teacher"] == pytest.approx(0.93 / 0.95)


@pytest.mark.parametrize(("student", "status"), [(0.9024, "failed"), (0.9025, "passed")])
def test_accuracy_gate_at_95_percent_of_teacher(student: float, status: str) -> None:
    assert dx.gate_accuracy(results(student=student, baseline=0.9)).status == status


@pytest.mark.parametrize(("student_train", "status"), [(0.9399, "passed"), (0.9401, "failed")])
def test_held_out_gate_compares_the_generalisation_gaps(student_train: float, status: str) -> None:
    r = results()  # validation 0.90 for both; the baseline trains at 0.92: a gap of 2 points, 2 more allowed
    r.metrics["student"]["train/acc"] = student_train
    gate = dx.gate_held_out(r)
    assert gate.status == status and gate.numbers["student_gap"] == pytest.approx(student_train - 0.9)


@pytest.mark.parametrize(("ratio", "assistants", "status"), [
    (1.49, 0, "passed"), (1.5, 0, "failed"), (1.5, 1, "passed"), (2.99, 1, "passed"),
    (3.0, 1, "failed"), (3.0, 2, "passed"),
])
def test_capacity_gate_follows_the_capacity_table(ratio: float, assistants: int, status: str) -> None:
    baseline = 0.9 / ratio
    r = chain(results(student=baseline, baseline=baseline, teacher=0.9),
              *np.geomspace(0.9, baseline, assistants + 2)[1:-1])  # every stage bridges the same share
    gate = dx.gate_capacity(r)
    assert gate.status == status and gate.numbers["performance_ratio"] == pytest.approx(ratio)


def test_capacity_gate_reads_every_stage_of_the_chain() -> None:
    r = chain(results(student=0.25, baseline=0.3, teacher=0.95), 0.9, 0.76)  # the last stage bridges 3.04x
    gate = dx.gate_capacity(r)
    assert gate.status == "failed" and gate.numbers["largest_stage_ratio"] == pytest.approx(3.04)
    assert "still bridges over 3x" in gate.reason
    del r.metrics["teacher"]  # online and self studies have no teacher
    assert dx.gate_capacity(r).status == "not measurable"


def test_knowledge_gate_fails_on_the_knowledge_confusion_evidence() -> None:
    assert dx.gate_knowledge(confused()).status == "failed"
    assert dx.gate_knowledge(confused(curve=(1.0, 0.3))).status == "passed"
    assert dx.gate_knowledge(results()).status == "not measurable"  # no KD curve


@pytest.mark.parametrize(("shift", "baseline_shift", "status"), [
    (0.15, 0.15, "failed"), (0.1501, 0.15, "passed"), (0.50, 0.52, "passed"), (0.50, 0.5201, "failed"),
])
def test_shift_gate_above_chance_and_near_the_baseline(shift: float, baseline_shift: float, status: str) -> None:
    r = results()
    r.metrics["student"]["shift/acc"], r.metrics["baseline"]["shift/acc"] = shift, baseline_shift
    assert dx.gate_shift(r).status == status


def test_compression_gate_fails_a_student_as_large_as_its_teacher() -> None:
    r = results()
    assert dx.gate_compression(r).status == "passed"
    r.metrics["student"]["model/params"] = r.metrics["teacher"]["model/params"]
    assert dx.gate_compression(r).status == "failed"


def test_boundary_gate_reads_the_validation_examples_the_teacher_misses() -> None:
    labels = np.array([0, 1, 0, 1])
    teacher = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.1, 0.9]])  # wrong on sample 1
    r = results()
    r.predictions = {"teacher": {"val_probs": teacher, "val_labels": labels},
                     "student": {"val_probs": np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.1, 0.9]])},
                     "baseline": {"val_probs": np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])}}
    gate = dx.gate_boundary(r)
    assert gate.status == "passed" and gate.numbers["student_acc"] > gate.numbers["baseline_acc"]
    r.predictions = {role: {k.replace("val", "test"): v for k, v in found.items()} for role, found in
                     r.predictions.items()}
    assert dx.gate_boundary(r).status == "not measurable"  # test predictions never stand in


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


def recorded(r: dx.StudyResults, **flags: object) -> str:
    """The rationale ``kdx advise`` would write for the study's measured situation with ``flags``."""
    situation = dx.measured_situation(r).model_copy(update=flags)
    return advisor.advise(situation).rationale


def test_mechanism_gate_re_advises_a_recorded_rationale_with_its_flags() -> None:
    r = results(teacher=0.95, baseline=0.55)  # 1.73x: progressive with default flags
    r.params["distill.rationale"] = "chosen by hand"  # free text: default flags, so offline disagrees
    assert dx.gate_mechanism(r).status == "failed"
    r.params |= {"distill.mechanism": "online", "distill.rationale": recorded(r, several_learners=True,
                                                                            stable_domain=False)}
    assert dx.gate_mechanism(r).status == "passed"  # the recorded flags make it online, as run
    r.params["distill.mechanism"] = "offline"
    gate = dx.gate_mechanism(r)
    assert gate.status == "failed" and "records online, but the study ran offline" in gate.reason
    r.params = {"distill.mechanism": "offline", "teacher.name": "no-such-model"}
    assert dx.gate_mechanism(r).status == "not measurable"


def test_mechanism_gate_fails_an_unaccepted_boundary() -> None:
    r = results(teacher=0.85, baseline=0.90, student=0.90)  # the teacher is worse than the student alone
    gate = dx.gate_mechanism(r)
    assert gate.status == "failed" and "needs_new_capabilities" in gate.reason
    r.params["distill.accepted_boundaries"] = "['needs_new_capabilities']"
    assert dx.gate_mechanism(r).status == "passed"
    r.params["distill.rationale"] = recorded(r, real_time=True)  # recorded with a boundary it never accepted
    gate = dx.gate_mechanism(r)
    assert gate.status == "failed" and "real_time" in gate.reason


@pytest.mark.parametrize(("teacher_class", "student_class", "mastered", "status"), [
    (0.95, 0.8549, 2, "failed"),  # class 1 is mastered (>= 95%) and the student keeps under 90% of it
    (0.95, 0.8551, 2, "passed"),
    (0.9499, 0.5, 1, "passed"),  # class 1 is not mastered, so losing it does not count
])
def test_preservation_gate_on_mastered_classes(teacher_class: float, student_class: float, mastered: int,
                                               status: str) -> None:
    r = results()  # class 0: teacher 100%, student 100%
    r.metrics["teacher"]["val/acc_class_1"] = teacher_class
    r.metrics["student"]["val/acc_class_1"] = student_class
    gate = dx.gate_preservation(r)
    assert gate.status == status and gate.numbers["mastered_classes"] == mastered


@pytest.mark.parametrize(("student_right", "status"), [(7, "failed"), (8, "passed")])
def test_boundary_gate_allows_two_points_below_the_baseline(student_right: int, status: str) -> None:
    labels = np.zeros(100, dtype=int)
    wrong = np.tile([[0.1, 0.9]], (100, 1))  # the teacher misses all 100: every example is hard
    right = np.tile([[0.9, 0.1]], (100, 1))
    r = results()
    r.predictions = {"teacher": {"val_probs": wrong, "val_labels": labels},
                     "baseline": {"val_probs": np.vstack([right[:10], wrong[10:]])},  # 10%
                     "student": {"val_probs": np.vstack([right[:student_right], wrong[student_right:]])}}
    gate = dx.gate_boundary(r)
    assert gate.status == status and gate.numbers["examples"] == 100


@pytest.mark.parametrize("mechanism", ["online", "self"])
def test_capacity_mismatch_without_a_teacher_offers_more_weight_on_the_labels(mechanism: str) -> None:
    r = results(student=0.80, baseline=0.90)
    del r.metrics["teacher"]
    r.params |= {"distill.mechanism": mechanism, "distill.alpha": "0.9",
                 "distill.peers": "[{'name': 'mlp', 'width': 32, 'depth': 1}]" if mechanism == "online" else "[]"}
    finding = dx.capacity_mismatch(r)
    assert finding.fix_overrides == ["distill.alpha=0.45"] and "assistant" not in finding.fix

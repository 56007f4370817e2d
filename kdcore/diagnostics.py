"""Findings (the survey's five failure modes) and the ten quality gates, from a study's results.

Pure functions over :class:`StudyResults`, which holds what a study logged: each role's final
metrics, the flattened config and, where available, the test predictions. The same code runs at
the end of ``kdx run`` and on old studies (``kdx diagnose``), so nothing here retrains.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from kdcore import advisor
from kdcore.registry import DATASETS
from kdcore.tracker import role_key

# --- thresholds (the survey's numbers, named) --------------------------------------------------
EPS = 1e-9  # accuracies are differences of floats: exactly at a threshold must not fire
COLLAPSE_MARGIN = 0.02  # capacity mismatch: student below the independent baseline by more than 2 points
CONVERGED_SHARE = 0.25  # knowledge confusion: KD term ended below a quarter of its first-epoch value...
NO_GAIN_MARGIN = 0.005  # ...while the student beat the baseline by less than half a point
KL_CLOSED = 0.30  # ...and the student closed at least 30% of the baseline's KL distance to the teacher
LOW_KL = 0.05  # knowledge confusion: mean KL(teacher || student) in nats counted as "matches"
LOW_AGREEMENT = 0.9  # ...yet top-1 agreement with the teacher below this
ECE_EXCESS = 0.05  # overconfidence: student ECE above both teacher's and baseline's by this much
RANDOM_MARGIN = 0.05  # cross-modal failure: student within 5 points of chance (1/K)...
GOOD_TEACHER_FACTOR = 2.0  # ...while the teacher is at least twice chance
ASSISTANT_KEEP = 0.90  # progressive degradation: an assistant below 90% of its own teacher
GATE_TEACHER_RATIO = 0.95  # gate 1: student >= 95% of teacher...
GATE_BASELINE_RATIO = 1.05  # ...or >= 105% of baseline
PROGRESSIVE_GAP = 3.0  # gate 3: a teacher/student performance ratio over 3x calls for assistants
SOFT_TEMPERATURE = 4.0  # overconfidence fix: raise the temperature to at least this
MASTERED = 0.95  # gate 10: classes the teacher gets right at least this often
KEEP_MASTERED = 0.90  # ...must keep at least 90% of the teacher's accuracy in the student


@dataclass
class StudyResults:
    """What diagnostics read: final metrics per role, the flat config, and optional predictions."""

    metrics: dict[str, dict[str, float]]  # role -> metric key -> value
    params: dict[str, str] = field(default_factory=dict)
    num_classes: int | None = None
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # role -> test_probs, ...
    history: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # role -> key -> per-epoch values

    def metric(self, role: str, key: str) -> float | None:
        value = self.metrics.get(role, {}).get(key)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass
class Finding:
    """A failure mode seen in a study, with its evidence and the fix as config overrides."""

    code: str
    title: str
    severity: str  # "critical" | "warning"
    evidence: dict[str, float]
    fix: str
    fix_overrides: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Gate:
    number: int
    name: str
    status: str  # "passed" | "failed" | "not measurable"
    numbers: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pts(value: float) -> float:
    return round(100 * value, 2)


# --- the five detectors ----------------------------------------------------------------------------
def capacity_mismatch(r: StudyResults) -> Finding | None:
    student, baseline = r.metric("student", "test/acc"), r.metric("baseline", "test/acc")
    if student is None or baseline is None or baseline - student <= COLLAPSE_MARGIN + EPS:
        return None
    evidence = {"student_acc": student, "baseline_acc": baseline, "drop_points": _pts(baseline - student),
                "threshold_points": _pts(COLLAPSE_MARGIN)}
    mechanism = r.params.get("distill.mechanism", "offline")
    if mechanism in TEACHERLESS_FIXES:  # no teacher to shrink or bridge: the student's own teachers pull it down
        alpha = _float(r.params.get("distill.alpha"))
        lower = [f"distill.alpha={alpha / 2:g}"] if alpha else []
        return Finding("capacity_mismatch", "Capacity mismatch collapse", "critical", evidence,
                       TEACHERLESS_FIXES[mechanism], lower)
    fix = "Insert a teacher assistant of intermediate capacity, or distill from a smaller teacher."
    overrides: list[str] = []
    situation = measured_situation(r)
    if situation is not None:
        have = len(_assistant_roles(r))
        chain = advisor.interpolate_assistants(advisor.facts(situation), have + 1)
        if chain and all(a.name for a in chain):
            sizes = ", ".join(f"{a.name} of width {a.width} and depth {a.depth}" for a in chain)
            fix = (f"{'Use' if have else 'Insert'} {len(chain)} teacher assistant{'s' if len(chain) > 1 else ''} "
                   f"({sizes}, sized by geometric interpolation of the parameter count), or distill from a "
                   "smaller teacher.")
            models = ", ".join(f"{{name: {a.name}, width: {a.width}, depth: {a.depth}}}" for a in chain)
            overrides = ["distill.mechanism=progressive", f"distill.assistants=[{models}]"]
    return Finding("capacity_mismatch", "Capacity mismatch collapse", "critical", evidence, fix, overrides)


# What to try when a student without an external teacher ends below the baseline.
TEACHERLESS_FIXES = {
    "online": "Halve alpha so the labels weigh more than the peers, or choose peers closer to the student's capacity.",
    "self": "Halve alpha so the labels weigh more than the earlier generation or the deepest exit; for exits, "
            "deploy a deeper one, for generations, train fewer.",
}


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _test_probs(r: StudyResults, role: str) -> np.ndarray | None:
    probs = r.predictions.get(role, {}).get("test_probs")
    return None if probs is None else np.clip(probs, 1e-12, 1)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL(p || q) over samples, in nats."""
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def knowledge_confusion(r: StudyResults) -> Finding | None:
    """Good distillation loss, poor task performance. Fires on either of two rules:

    (a) the student learned the teacher's outputs yet not its skill: the KD term converged (its last
        epoch below CONVERGED_SHARE of its first), the student closed at least KL_CLOSED of the
        distance to the teacher that the baseline leaves (test KL(teacher || student) <= (1 - KL_CLOSED)
        * KL(teacher || baseline)), and it gained less than NO_GAIN_MARGIN over the baseline without
        collapsing (a collapse is capacity mismatch);
    (b) the student matches the teacher's distribution (mean test KL below LOW_KL) while its top-1
        agreement with the teacher is below LOW_AGREEMENT: it copies confidences, not decisions.
    """
    student, baseline = r.metric("student", "test/acc"), r.metric("baseline", "test/acc")
    t, s, b = (_test_probs(r, role) for role in ("teacher", "student", "baseline"))
    evidence: dict[str, float] = {}
    curve = r.history.get("student", {}).get("train/loss_kd", [])
    converged = len(curve) >= 2 and curve[0] > 0 and curve[-1] / curve[0] < CONVERGED_SHARE
    no_gain = (student is not None and baseline is not None
               and -COLLAPSE_MARGIN <= student - baseline < NO_GAIN_MARGIN)
    if converged and no_gain and t is not None and s is not None and b is not None:
        kl_student, kl_baseline = _kl(t, s), _kl(t, b)
        if kl_student <= (1 - KL_CLOSED) * kl_baseline:
            evidence |= {"kd_loss_first": curve[0], "kd_loss_last": curve[-1], "kl_student": kl_student,
                         "kl_baseline": kl_baseline, "student_acc": student, "baseline_acc": baseline}
    if t is not None and s is not None:
        kl, agree = _kl(t, s), float((t.argmax(1) == s.argmax(1)).mean())
        if kl < LOW_KL and agree < LOW_AGREEMENT:
            evidence |= {"kl_teacher_student": kl, "agreement": agree}
    if not evidence:
        return None
    return Finding("knowledge_confusion", "Knowledge type confusion", "warning", evidence,
                   "Transfer another kind of knowledge: intermediate features or relations, matched to "
                   "what the student's architecture can represent.")


def overconfidence(r: StudyResults) -> Finding | None:
    """The survey's rule: the student's validation entropy is below the teacher's while it is less
    accurate (critical). A student far worse calibrated than both teacher and baseline (ECE above
    both by ECE_EXCESS) counts too, as a warning, even when its entropy stays above the teacher's:
    a weak student copying a near-certain teacher is overconfident where it is wrong. The warning
    needs the miscalibration to be overconfidence (mean test confidence above test accuracy); an
    underconfident student, e.g. one distilled below T=1, does not count."""
    s_ent, t_ent = r.metric("student", "val/entropy"), r.metric("teacher", "val/entropy")
    s_acc, t_acc = r.metric("student", "val/best_acc"), r.metric("teacher", "val/best_acc")
    s_ece, t_ece, b_ece = (r.metric(role, "val/ece") for role in ("student", "teacher", "baseline"))
    temperature = max(2 * float(r.params.get("distill.temperature", "4") or 4), SOFT_TEMPERATURE)
    overrides = [f"distill.temperature={temperature:g}"]
    fix = f"Raise the temperature to {temperature:g}, add label smoothing, or use several diverse teachers."
    if None not in (s_ent, t_ent, s_acc, t_acc) and s_ent < t_ent and s_acc < t_acc:
        return Finding("overconfidence", "Teacher overconfidence amplification", "critical",
                       {"student_entropy": s_ent, "teacher_entropy": t_ent, "student_acc": s_acc,
                        "teacher_acc": t_acc, "student_ece": s_ece or math.nan}, fix, overrides)
    if None not in (s_ece, t_ece, b_ece) and s_ece > max(t_ece, b_ece) + ECE_EXCESS:
        evidence = {"student_ece": s_ece, "teacher_ece": t_ece, "baseline_ece": b_ece}
        probs, labels = r.predictions.get("student", {}).get("test_probs"), _labels(r)
        if probs is not None and labels is not None:  # miscalibrated, but which way? only over counts
            gap = float(probs.max(1).mean() - (probs.argmax(1) == labels).mean())
            if gap <= 0:
                return None
            evidence["student_overconfidence"] = gap
        return Finding("overconfidence", "Teacher overconfidence amplification (miscalibrated student)",
                       "warning", evidence, fix, overrides)
    return None


def _labels(r: StudyResults) -> np.ndarray | None:
    for role in ("teacher", "student", "baseline"):
        labels = r.predictions.get(role, {}).get("test_labels")
        if labels is not None:
            return labels
    return None


def cross_modal_failure(r: StudyResults) -> Finding | None:
    student, teacher, k = r.metric("student", "test/acc"), r.metric("teacher", "test/acc"), r.num_classes
    if student is None or teacher is None or not k:
        return None
    chance = 1 / k
    if student - chance <= RANDOM_MARGIN and teacher >= GOOD_TEACHER_FACTOR * chance:
        return Finding("cross_modal_failure", "Cross-modal alignment failure", "critical",
                       {"student_acc": student, "chance": chance, "teacher_acc": teacher},
                       "Add an alignment loss on paired samples, or learn the modality translation first.")
    return None


def _assistant_roles(r: StudyResults) -> list[str]:
    """assistant_1, assistant_2, ... in chain order (numerically, so assistant_10 follows assistant_9)."""
    return sorted((k for k in r.metrics if k.startswith("assistant_")), key=role_key)


def progressive_degradation(r: StudyResults) -> Finding | None:
    chain = [role for role in ("teacher", *_assistant_roles(r)) if r.metric(role, "test/acc") is not None]
    for upper, lower in pairwise(chain):
        up, low = r.metric(upper, "test/acc"), r.metric(lower, "test/acc")
        if up and low is not None and low < ASSISTANT_KEEP * up:
            return Finding("progressive_degradation", "Progressive learning degradation", "critical",
                           {f"{upper}_acc": up, f"{lower}_acc": low, "ratio": low / up},
                           "Distill from the original teacher at every stage too, or shorten the chain.")
    return None


DETECTORS = (capacity_mismatch, knowledge_confusion, overconfidence, cross_modal_failure, progressive_degradation)


def detect(results: StudyResults) -> list[Finding]:
    """Every failure mode the study shows."""
    return [finding for detector in DETECTORS if (finding := detector(results)) is not None]


# --- the ten gates ------------------------------------------------------------------------------------
def _missing(number: int, name: str, reason: str) -> Gate:
    return Gate(number, name, "not measurable", reason=reason)


def _verdict(ok: bool) -> str:
    return "passed" if ok else "failed"


def gate_accuracy(r: StudyResults) -> Gate:
    name = "Student >= 95% of teacher or >= 105% of baseline (validation)"
    s, t, b = (r.metric(role, "val/best_acc") for role in ("student", "teacher", "baseline"))
    if s is None or t is None or b is None:
        return _missing(1, name, "needs validation accuracy of student, teacher and baseline")
    ratios = {"student_over_teacher": s / t if t else math.nan, "student_over_baseline": s / b if b else math.nan}
    return Gate(1, name, _verdict(s >= GATE_TEACHER_RATIO * t or s >= GATE_BASELINE_RATIO * b), ratios)


def gate_held_out(r: StudyResults) -> Gate:
    name = "Generalises to a held-out test split"
    test, train = r.metric("student", "test/acc"), r.metric("student", "train/acc")
    if test is None:
        return _missing(2, name, "no test accuracy logged for the student")
    numbers = {"test_acc": test} | ({"train_test_gap": train - test} if train is not None else {})
    return Gate(2, name, "passed", numbers, "test split never used for model selection")


def gate_capacity(r: StudyResults) -> Gate:
    """Above a 3x teacher/baseline performance gap, a chain must exist and each of its stages must
    bridge at most 3x (the stage above over the stage below, in test accuracy)."""
    name = "Capacity gap assessed; assistants used above a 3x performance gap"
    # The gap a student must bridge: the teacher over the student trained alone (the baseline).
    t = r.metric("teacher", "test/acc")
    s = r.metric("baseline", "test/acc") or r.metric("student", "test/acc")
    if not t or not s:
        return _missing(3, name, "needs teacher and baseline (or student) accuracy; a study without a teacher "
                                 "(online, self) has no gap to bridge")
    gap = t / s
    assistants = _assistant_roles(r)
    numbers = {"performance_ratio": gap, "assistants": float(len(assistants))}
    if r.metric("student", "model/params") and r.metric("teacher", "model/params"):
        numbers["parameter_ratio"] = r.metric("teacher", "model/params") / r.metric("student", "model/params")
    chain = [r.metric(role, "test/acc") for role in ("teacher", *assistants, "student")]
    if assistants and all(chain):
        numbers["largest_stage_ratio"] = max(up / low for up, low in pairwise(chain))
    if gap <= PROGRESSIVE_GAP:
        return Gate(3, name, "passed", numbers, "the gap is small enough for direct distillation")
    if not assistants:
        return Gate(3, name, "failed", numbers, f"a {gap:.1f}x gap without assistants")
    ok = numbers.get("largest_stage_ratio", math.inf) <= PROGRESSIVE_GAP
    return Gate(3, name, _verdict(ok), numbers,
                "every stage of the chain bridges at most 3x" if ok else "a stage of the chain still bridges over 3x")


def gate_knowledge(r: StudyResults) -> Gate:
    name = "Knowledge type fits both architectures"
    knowledge = r.params.get("kd.knowledge") or r.params.get("knowledge")
    if knowledge == "response":
        return Gate(4, name, "passed", reason="response knowledge needs only logits, which every model exposes")
    if knowledge in {"feature", "relation", "multi"}:
        return Gate(4, name, "passed", reason=f"{knowledge} terms read features that both models expose, with the "
                    "shapes they need (checked when the config was validated; adapters bridge widths)")
    return _missing(4, name, f"no rule for knowledge type {knowledge!r}")


def gate_shift(r: StudyResults) -> Gate:
    name = "Evaluated on a shifted distribution"
    shift, test = r.metric("student", "shift/acc"), r.metric("student", "test/acc")
    if shift is None:
        return _missing(5, name, "no shifted-split accuracy logged")
    return Gate(5, name, "passed", {"shift_acc": shift} | ({"test_acc": test} if test is not None else {}))


def gate_no_failure(findings: list[Finding]) -> Gate:
    return Gate(6, "No failure mode detected", _verdict(not findings), {"findings": float(len(findings))},
                ", ".join(f.code for f in findings))


def gate_compression(r: StudyResults) -> Gate:
    name = "Compression documented: parameters, latency, memory"
    keys = {"params": "model/params", "latency": "model/latency_ms", "memory": "model/memory_mb"}
    numbers = {}
    for label, key in keys.items():
        t, s = r.metric("teacher", key), r.metric("student", key)
        if not t or not s:
            return _missing(7, name, f"no {label} measured for teacher and student")
        numbers[f"{label}_ratio"] = t / s
    return Gate(7, name, "passed", numbers)


def measured_situation(r: StudyResults) -> advisor.Situation | None:
    """The advisor's situation rebuilt from what a study measured: sizes, and the teacher's and the
    baseline's accuracy (the student trained alone). None when the study's models are not registered."""
    p = r.params

    def side(role: str, accuracy_role: str) -> dict[str, Any]:
        spec = {"model": p.get(f"{role}.name"), "params": r.metric(role, "model/params"),
                "accuracy": r.metric(accuracy_role, "test/acc")}
        for key in ("width", "depth"):
            value = p.get(f"{role}.{key}", "")
            spec[key] = int(value) if value.isdigit() else None
        spec["params"] = int(spec["params"]) if spec["params"] else None
        return spec

    need = {"response": "decisions", "feature": "patterns", "relation": "structure"}.get(p.get("kd.knowledge", ""))
    raw = {"dataset": p.get("data.name") or None, "teacher": side("teacher", "teacher"),
           "student": side("student", "baseline"), "needs": [need or "decisions"]}
    names = list(DATASETS.entry(p["data.name"]).meta.get("views", {})) if p.get("data.name") in DATASETS else []
    if p.get("distill.mechanism") == "cross_modal" and names:  # the sensors each side saw are facts of the study
        raw["teacher"]["modality"] = p.get("distill.teacher_view") or names[0]
        raw["student"]["modality"] = p.get("distill.student_view") or names[-1]
    try:
        return advisor.situation(raw)
    except advisor.AdviceError:
        return None


def gate_mechanism(r: StudyResults) -> Gate:
    """Passed when the study records why it uses its mechanism (``distill.rationale``, which ``kdx advise``
    writes). Without one, the advisor is asked on the study's measured gap: the gate passes when its
    advice matches the mechanism used, and fails, giving the advice, when it does not."""
    name = "Transfer mechanism justified"
    rationale = r.params.get("distill.rationale") or r.params.get("kd.advice")
    if rationale:
        return Gate(8, name, "passed", reason=f"recorded: {rationale}")
    used = r.params.get("distill.mechanism")
    if used in ("online", "self"):
        return _missing(8, name, f"no rationale is recorded, and what makes {used} right (several learners "
                                 "exploring, or no teacher at all) is not something a study measures; record one "
                                 "with distill.rationale (kdx advise writes it)")
    situation = measured_situation(r)
    if situation is None or not used:
        return _missing(8, name, "no rationale is recorded, and the study's models cannot be re-assessed")
    advice = advisor.advise(situation)
    numbers = {k: v for k, v in (("parameter_ratio", advice.parameter_ratio),
                                 ("performance_ratio", advice.performance_ratio)) if v is not None}
    if advice.mechanism == used:
        return Gate(8, name, "passed", numbers, f"no rationale recorded; the advice on the measured gap agrees: "
                    f"{advice.rationale}")
    return Gate(8, name, "failed", numbers, f"no rationale recorded, and the advice on the measured gap is "
                f"{advice.mechanism}, not {used}: {advice.rationale}")


def _hard_examples(r: StudyResults) -> np.ndarray | None:
    """Test examples the teacher gets wrong, or is least confident on (lowest decile)."""
    teacher = r.predictions.get("teacher", {})
    probs, labels = teacher.get("test_probs"), teacher.get("test_labels")
    if probs is None or labels is None:
        return None
    confidence = probs.max(1)
    return (probs.argmax(1) != labels) | (confidence <= np.quantile(confidence, 0.1))


def gate_boundary(r: StudyResults) -> Gate:
    name = "Boundary conditions: where the teacher fails or hesitates"
    hard = _hard_examples(r)
    student, baseline = r.predictions.get("student", {}), r.predictions.get("baseline", {})
    if hard is None or "test_probs" not in student or "test_probs" not in baseline or not hard.any():
        return _missing(9, name, "needs test predictions of teacher, student and baseline")
    labels = r.predictions["teacher"]["test_labels"][hard]
    s_acc = float((student["test_probs"][hard].argmax(1) == labels).mean())
    b_acc = float((baseline["test_probs"][hard].argmax(1) == labels).mean())
    return Gate(9, name, _verdict(s_acc >= b_acc - COLLAPSE_MARGIN - EPS),
                {"examples": float(hard.sum()), "student_acc": s_acc, "baseline_acc": b_acc})


def gate_preservation(r: StudyResults) -> Gate:
    name = "Knowledge preserved on the classes the teacher masters"
    teacher = r.metrics.get("teacher", {})
    classes = sorted({int(k.rsplit("_", 1)[1]) for k in teacher if k.startswith("test/acc_class_")})
    mastered = [k for k in classes if (r.metric("teacher", f"test/acc_class_{k}") or 0) >= MASTERED]
    if not mastered or r.metric("student", f"test/acc_class_{mastered[0]}") is None:
        return _missing(10, name, "needs per-class accuracy of teacher and student")
    lost = [k for k in mastered if r.metric("student", f"test/acc_class_{k}") < KEEP_MASTERED
            * r.metric("teacher", f"test/acc_class_{k}")]
    return Gate(10, name, _verdict(not lost), {"mastered_classes": float(len(mastered)), "lost": float(len(lost))},
                f"lost classes: {', '.join(map(str, lost))}" if lost else "")


def evaluate_gates(results: StudyResults, findings: list[Finding]) -> list[Gate]:
    """All ten gates, in the survey's order."""
    return [gate_accuracy(results), gate_held_out(results), gate_capacity(results), gate_knowledge(results),
            gate_shift(results), gate_no_failure(findings), gate_compression(results), gate_mechanism(results),
            gate_boundary(results), gate_preservation(results)]

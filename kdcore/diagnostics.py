"""Findings (the survey's five failure modes) and the ten quality gates, from a study's results.

Pure functions over :class:`StudyResults`, which holds what a study logged: each role's final
metrics, the flattened config and, where available, the predictions. The same code runs at
the end of ``kdx run`` and on old studies (``kdx diagnose``), so nothing here retrains.

Validation only
---------------
Every judgement reads the validation split: the selected model's ``val/best_acc``, ``val/acc_class_<k>``,
``val/entropy`` and ``val/ece``, the ``val_probs``/``val_labels`` predictions, and ``train/...`` where a
rule compares with training. Test numbers are for the report: a fix chosen by them would be tuned on the
test split. The shifted split (``shift/acc``) is a held-out distribution of its own, read by gate 5 alone.
A study recorded without validation predictions (an older sample) leaves what needs them "not
measurable"; nothing falls back to test numbers.

The detectors (the survey's rule, then what it becomes here)
------------------------------------------------------------
* Cross-modal alignment failure ("same-modality distillation works, cross-modal fails completely"):
  a ``cross_modal`` study whose student is within RANDOM_MARGIN of chance while the teacher reaches
  GOOD_FACTOR x chance and the baseline (the student's architecture trained with labels on its own view,
  the same-modality result) reaches it too. Fix: alignment on paired samples (``distill.align=true``).
* Progressive learning degradation ("assistant < 90% of the previous teacher"): every stage of a chain,
  the student included, against the stage that taught it (ASSISTANT_KEEP). Fix: skip connections to the
  teacher for a drop at stage 2 or later; a shorter chain for a drop at the first stage; assistant
  ensembles where the config has them.
* Capacity mismatch ("student drops > 2% vs the baseline; the gap is too large"): the student below the
  baseline by more than COLLAPSE_MARGIN, and the gap it had to bridge (its own teacher over the baseline)
  at least CAPACITY_GAP, the capacity table's first row that direct distillation no longer serves. Without
  an external teacher (online, self) no gap can be measured; the drop alone decides and the fix gives the
  labels more weight.
* Knowledge type confusion ("temperature scaling does not improve results; the student mimics
  confidences but makes wrong decisions"): the survey's rule needs the same study at other
  temperatures (:func:`kdcore.siblings.temperature_siblings`); with siblings at SWEEP_MIN other
  temperatures of which none beats the student by more than NO_GAIN_MARGIN, it fires. The evidence that
  the student mimics while deciding wrongly is the project's rule: the teacher holds knowledge the student
  lacks (teacher/baseline at least SIMILAR_GAP), the KD term converged (its last epoch below
  CONVERGED_SHARE of its first) and the student gained less than KEPT_ADVANTAGE of the teacher's
  validation advantage over the baseline; or, with validation predictions, the student's distribution
  matches the teacher's (KL below LOW_KL) while its top-1 agreement stays under LOW_AGREEMENT. A sibling
  that does better rules knowledge confusion out (the temperature was wrong). Without enough siblings the
  finding rests on the project's rule alone, says so, and offers the temperature sweep.
* Teacher overconfidence ("student validation entropy below the teacher's while less accurate"): the
  survey's rule, critical. The project's extension, a warning: the student's ECE above both teacher's and
  baseline's by ECE_EXCESS, in the overconfident direction (mean confidence above accuracy), which only
  the validation predictions show.

One cause, one finding
----------------------
DETECTORS is the precedence: cross-modal failure > progressive degradation > capacity mismatch >
knowledge confusion > overconfidence. Each mode produces the symptoms the modes after it test for (a
student at chance, or taught by a corrupted chain, fails every comparison with the baseline; a student
that cannot represent its teacher neither transfers knowledge nor matches its confidence; copying
confidences without the decisions is overconfidence where it is wrong), so a study gets the first mode
that fires, with its own fix.

The gates (the survey's checklist, made falsifiable)
----------------------------------------------------
1. Student >= 95% of the teacher or >= 105% of the baseline (validation).
2. Generalisation: the student's train - validation gap exceeds the baseline's by at most
   GENERALISATION_MARGIN: it learned what transfers, not only its training inputs.
3. The capacity table on teacher/baseline: below 1.5x direct; 1.5-3x at least one assistant; 3x or more
   (3.0 included) at least MULTI_STEP assistants; every stage of a chain bridges at most 3x.
4. Knowledge type fits: fails on the knowledge-confusion evidence above (the project's rule): the student
   reproduced what it was taught, yet the teacher's knowledge did not reach its decisions. That a type's
   terms can be read by both architectures is checked when a config is validated.
5. Shifted distribution: the student's ``shift/acc`` above chance by more than RANDOM_MARGIN and not below
   the baseline's by more than COLLAPSE_MARGIN.
6. No finding. 7. Compression documented, and real: the student has fewer parameters than the teacher.
8. Mechanism justified: a rationale the advisor wrote is re-advised on the validation numbers with the
   flags it recorded, free text (or none) on the numbers with default flags; the mechanism must agree, and
   every NOT-FOR boundary that applies must be in ``distill.accepted_boundaries``.
9. Where the teacher fails or hesitates (validation), the student stays within COLLAPSE_MARGIN of the
   baseline. 10. Classes the teacher masters (>= MASTERED) keep KEEP_MASTERED of its accuracy.

Every fix a finding offers as config overrides is applied to the study's own config (rebuilt from its
params) and validated; a fix that does not validate is described but offers no overrides.
"""

from __future__ import annotations

import ast
import copy
import functools
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import yaml

from kdcore import advisor
from kdcore.config import ConfigError, DistillConfig, ExperimentConfig, apply_overrides, validate
from kdcore.registry import DATASETS, MECHANISMS, METHODS
from kdcore.tracker import role_key

# --- thresholds: the survey's numbers, named; the project's own marked (project) ------------------
EPS = 1e-9  # accuracies are differences of floats: exactly at a threshold must not fire
COLLAPSE_MARGIN = 0.02  # the survey's capacity-mismatch detection: more than 2 points below the baseline
CAPACITY_GAP = advisor.ONE_ASSISTANT_PERFORMANCE  # 1.5x: from here the table says direct distillation no longer fits
SIMILAR_GAP = advisor.SIMILAR_PERFORMANCE  # 1.1x: below it teacher and student perform alike; nothing to confuse
PROGRESSIVE_GAP = advisor.PROGRESSIVE_PERFORMANCE  # 3x: multi-step progressive
MAX_STAGE_GAP = 3.0  # gate 3: each stage of a chain bridges at most 3x (beyond, the stage itself is multi-step)
MULTI_STEP = 2  # gate 3: "multi-step progressive" means at least two assistants (three stages)
CONVERGED_SHARE = 0.25  # (project) knowledge confusion: KD term ended below a quarter of its first epoch's...
KEPT_ADVANTAGE = 0.5  # (project) ...while the student gained under half the teacher's advantage over the baseline
NO_GAIN_MARGIN = 0.005  # ...and no other temperature beats the student by more than half a point
SWEEP_MIN = 2  # ...measured at two other temperatures at least
SWEEP_TEMPERATURES = (1.0, 2.0, 4.0, 8.0)  # the sweep offered when fewer were run (Hinton et al. 2015's range)
LOW_KL = 0.05  # (project) knowledge confusion: mean KL(teacher || student) in nats counted as "matches"
LOW_AGREEMENT = 0.9  # ...yet top-1 agreement with the teacher below this
ECE_EXCESS = 0.05  # (project) overconfidence: student ECE above both teacher's and baseline's by this
SOFT_TEMPERATURE = 4.0  # overconfidence fix: raise the temperature to at least this
LABEL_SMOOTHING = 0.1  # overconfidence fix: the usual amount (Szegedy et al. 2016)
LABEL_ALPHA = 0.2  # (project) overconfidence fix: alpha at most this, so the (smoothed) labels weigh 80%:
# smoothing acts on the label term alone, which alpha 1 switches off (docs/workshop.md has the seeds)
RANDOM_MARGIN = 0.05  # (project) "at chance", the survey's "random baseline": within 5 points of 1/K
GOOD_FACTOR = 2.0  # (project) "works": at least twice chance (the teacher, and the same-modality baseline)
ASSISTANT_KEEP = 0.90  # progressive degradation: a stage below 90% of the stage that taught it
ENSEMBLE_FIX = 3  # progressive degradation fix: assistants trained per stage, when the config has the field
GATE_TEACHER_RATIO = 0.95  # gate 1: student >= 95% of teacher...
GATE_BASELINE_RATIO = 1.05  # ...or >= 105% of baseline
GENERALISATION_MARGIN = COLLAPSE_MARGIN  # gate 2: the survey's 2-point tolerance, on the train-validation gap
MASTERED = 0.95  # gate 10: classes the teacher gets right at least this often
KEEP_MASTERED = 0.90  # ...must keep at least 90% of the teacher's accuracy in the student

VAL = "val/best_acc"  # the selected model's validation accuracy: what every comparison reads


@dataclass
class StudyResults:
    """What diagnostics read: final metrics per role, the flat config, and optional predictions."""

    metrics: dict[str, dict[str, float]]  # role -> metric key -> value
    params: dict[str, str] = field(default_factory=dict)
    num_classes: int | None = None
    predictions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # role -> val_probs, ...
    history: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # role -> key -> per-epoch values

    def metric(self, role: str, key: str) -> float | None:
        value = self.metrics.get(role, {}).get(key)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass
class Finding:
    """A failure mode seen in a study, with its evidence and the fix as config overrides.

    ``sweep`` maps a config key to values to run one study each with (e.g. the temperatures a
    knowledge-confusion diagnosis still needs)."""

    code: str
    title: str
    severity: str  # "critical" | "warning"
    evidence: dict[str, float]
    fix: str
    fix_overrides: list[str] = field(default_factory=list)
    sweep: dict[str, list[Any]] = field(default_factory=dict)

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


# --- what the rules read -------------------------------------------------------------------------
def _acc(r: StudyResults, role: str) -> float | None:
    return r.metric(role, VAL)


def _ratio(upper: float | None, lower: float | None) -> float | None:
    return upper / lower if upper is not None and lower else None


def _assistant_roles(r: StudyResults) -> list[str]:
    """assistant_1, assistant_2, ... in chain order (numerically, so assistant_10 follows assistant_9)."""
    return sorted((k for k in r.metrics if k.startswith("assistant_")), key=role_key)


def _own_teacher(r: StudyResults) -> str:
    """The role the student learned from: the last assistant of a chain, else the teacher."""
    return ([*_assistant_roles(r)] or ["teacher"])[-1]


def _val(r: StudyResults, role: str, key: str) -> np.ndarray | None:
    return r.predictions.get(role, {}).get(f"val_{key}")


def _val_labels(r: StudyResults) -> np.ndarray | None:
    return next((labels for role in ("teacher", "student", "baseline") if (labels := _val(r, role, "labels"))
                 is not None), None)


def _classes(r: StudyResults) -> int | None:
    """How many classes the task has: recorded, else from the validation predictions or the dataset."""
    if r.num_classes:
        return r.num_classes
    probs = next((p for role in r.predictions if (p := _val(r, role, "probs")) is not None), None)
    if probs is not None:
        return int(probs.shape[1])
    name = r.params.get("data.name")
    return DATASETS.entry(name).meta.get("num_classes") if name in DATASETS else None


def _at_chance(accuracy: float, chance: float) -> bool:
    return accuracy - chance <= RANDOM_MARGIN + EPS


def _clipped(probs: np.ndarray) -> np.ndarray:
    return np.clip(probs, 1e-12, 1)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL(p || q) over samples, in nats."""
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def _kept(s: float, t: float, b: float) -> float:
    """The share of the teacher's advantage over the baseline that the student gained (t > b)."""
    return (s - b) / (t - b)


def _accuracy_ok(s: float, t: float, b: float) -> bool:
    """Gate 1's bar: at least 95% of the teacher or 105% of the baseline."""
    return s >= GATE_TEACHER_RATIO * t - EPS or s >= GATE_BASELINE_RATIO * b - EPS


# --- the study's config, to check every fix against ----------------------------------------------
SECTIONS = tuple(ExperimentConfig.model_fields)


def _is_text(annotation: Any) -> bool:
    """A field that holds text as it is (str, str | None, a Literal of strings)."""
    if annotation is str:
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return all(isinstance(a, str) for a in args)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_text(a) for a in args if a is not type(None))
    return False


def _param_value(section: str, path: list[str], text: str) -> Any:
    """A logged param back as the value the config held (params are ``str()`` of the config's values)."""
    model = ExperimentConfig.model_fields[section].annotation
    annotation = getattr(model, "model_fields", {}).get(path[0])
    annotation = annotation.annotation if annotation is not None and len(path) == 1 else None
    if annotation is not None and _is_text(annotation):
        return text if text or annotation is str else None
    if text == "":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def study_config(r: StudyResults) -> dict[str, Any] | None:
    """The study's config as a raw mapping, rebuilt from its params (the flattened config); None when it
    does not validate in this version. Shared between callers: copy it before changing it."""
    return _config_of(tuple(sorted(r.params.items())))


@functools.lru_cache(maxsize=64)
def _config_of(params: tuple[tuple[str, str], ...]) -> dict[str, Any] | None:
    if not dict(params).get("data.name"):
        return None
    raw: dict[str, Any] = {}
    for key, text in params:
        section, *path = key.split(".")
        fields = getattr(ExperimentConfig.model_fields.get(section, None), "annotation", None)
        if section not in SECTIONS or not path or path[0] not in getattr(fields, "model_fields", {}):
            continue  # a tag-like param (kd.knowledge) or a field of an older version
        node = raw.setdefault(section, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _param_value(section, path, text)
    try:
        validate(copy.deepcopy(raw))
    except ConfigError:
        return None
    return raw


def _override(key: str, value: Any) -> str:
    """``key=value`` as ``kdx run`` and the dashboard apply it (the value as YAML)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, int | float):
        return f"{key}={value:g}"
    if value is None:
        return f"{key}="
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return f"{key}={text.strip().removesuffix('...').strip()}"


def _applicable(r: StudyResults, overrides: list[str]) -> list[str]:
    """``overrides`` when they turn the study's own config into a valid one; else none."""
    raw = study_config(r)
    if raw is None or not overrides:
        return []
    try:
        validate(apply_overrides(copy.deepcopy(raw), overrides))
    except ConfigError:
        return []
    return overrides


def _distill(raw: dict[str, Any] | None) -> dict[str, Any]:
    return (raw or {}).get("distill", {})


def _default(name: str) -> Any:
    return DistillConfig.model_fields[name].get_default(call_default_factory=True)


def _mechanism_switch(raw: dict[str, Any] | None, mechanism: str) -> list[str]:
    """Overrides that move a config to ``mechanism``: the other mechanisms' fields back to their defaults."""
    own = set(MECHANISMS.entry(mechanism).meta.get("fields", ()))
    distill = _distill(raw)
    others = dict.fromkeys(name for entry in MECHANISMS for name in entry.meta.get("fields", ()) if name not in own)
    resets = [_override(f"distill.{name}", _default(name)) for name in others
              if name in distill and distill[name] != _default(name)]
    return [f"distill.mechanism={mechanism}", *resets]


def _stage_lists(raw: dict[str, Any] | None, dropped: int | None) -> list[str]:
    """Per-stage lists of a chain whose stages change: without stage ``dropped`` (0-based), or emptied."""
    out = []
    for name in ("stage_temperatures", "stage_params"):
        values = _distill(raw).get(name) or []
        if values:
            kept = [v for i, v in enumerate(values) if i != dropped] if dropped is not None else []
            out.append(_override(f"distill.{name}", kept))
    return out


# --- the five detectors --------------------------------------------------------------------------
def cross_modal_failure(r: StudyResults) -> Finding | None:
    if r.params.get("distill.mechanism") != "cross_modal":
        return None
    student, teacher, baseline, k = _acc(r, "student"), _acc(r, "teacher"), _acc(r, "baseline"), _classes(r)
    if None in (student, teacher, baseline) or not k:
        return None
    chance = 1 / k
    works = GOOD_FACTOR * chance
    if not (_at_chance(student, chance) and teacher >= works and baseline >= works):
        return None
    evidence = {"student_acc": student, "chance": chance, "teacher_acc": teacher, "baseline_acc": baseline}
    raw = study_config(r)
    distill, epochs = _distill(raw), (raw or {}).get("train", {}).get("epochs", 0)
    if raw is None:
        fix = "Align the sides on paired samples (distill.align=true), or learn the modality translation first."
        overrides = []
    elif not distill.get("align", True):
        fix = "Align the student's features to the teacher's on paired samples first (distill.align=true)."
        overrides = ["distill.align=true"]
        if distill.get("align_epochs", _default("align_epochs")) >= epochs > 1:
            overrides.append(f"distill.align_epochs={max(1, epochs // 3)}")
    else:
        longer = min(2 * distill.get("align_epochs", _default("align_epochs")), epochs - 1)
        fix = (f"Learn the modality translation first: give the alignment network {longer} epochs before "
               "distillation, or pair the training samples more carefully.")
        overrides = [f"distill.align_epochs={longer}"] if longer > distill.get("align_epochs", longer) else []
    return Finding("cross_modal_failure", "Cross-modal alignment failure", "critical", evidence, fix,
                   _applicable(r, overrides))


def progressive_degradation(r: StudyResults) -> Finding | None:
    assistants = _assistant_roles(r)
    if not assistants:
        return None
    chain = [role for role in ("teacher", *assistants, "student") if _acc(r, role) is not None]
    for stage, (upper, lower) in enumerate(pairwise(chain), start=1):
        up, low = _acc(r, upper), _acc(r, lower)
        if up and low is not None and low < ASSISTANT_KEEP * up - EPS:
            fix, overrides = _degradation_fix(r, stage, len(assistants))
            return Finding("progressive_degradation", "Progressive learning degradation", "critical",
                           {f"{upper}_acc": up, f"{lower}_acc": low, "ratio": low / up, "stage": float(stage)},
                           fix, _applicable(r, overrides))
    return None


def _degradation_fix(r: StudyResults, stage: int, n: int) -> tuple[str, list[str]]:
    """Skip connections to the teacher for a drop at stage 2 or later; else a chain without the assistant that
    lost the knowledge (or, once skipping, the last one); assistant ensembles where the config has them."""
    raw = study_config(r)
    distill = _distill(raw)
    if stage >= 2 and not distill.get("skip_to_teacher", False):
        fix, overrides = "Let every stage learn from the original teacher too (skip connections to it).", [
            "distill.skip_to_teacher=true"]
    else:
        dropped = min(stage, n) - 1
        kept = [a for i, a in enumerate(distill.get("assistants", [])) if i != dropped]
        if not kept:
            return f"Shorten the chain: drop assistant_{dropped + 1} and distill directly.", _mechanism_switch(
                raw, "offline")
        fix = f"Shorten the chain: drop assistant_{dropped + 1}."
        overrides = [_override("distill.assistants", kept), *_stage_lists(raw, dropped)]
    if "assistant_ensemble" in DistillConfig.model_fields and distill.get("assistant_ensemble", 1) < ENSEMBLE_FIX:
        overrides.append(f"distill.assistant_ensemble={ENSEMBLE_FIX}")
        fix += f" Train an ensemble of {ENSEMBLE_FIX} assistants per stage."
    return fix, overrides


# What to try when a student without an external teacher ends below the baseline.
TEACHERLESS_FIXES = {
    "online": "Halve alpha so the labels weigh more than the peers, or choose peers closer to the student's capacity.",
    "self": "Halve alpha so the labels weigh more than the earlier generation or the deepest exit; for exits, "
            "deploy a deeper one, for generations, train fewer.",
}


def capacity_mismatch(r: StudyResults) -> Finding | None:
    student, baseline = _acc(r, "student"), _acc(r, "baseline")
    if student is None or baseline is None or baseline - student <= COLLAPSE_MARGIN + EPS:
        return None
    evidence = {"student_acc": student, "baseline_acc": baseline, "drop_points": _pts(baseline - student),
                "threshold_points": _pts(COLLAPSE_MARGIN)}
    mechanism = r.params.get("distill.mechanism", "offline")
    if mechanism in TEACHERLESS_FIXES:  # no teacher to shrink or bridge: the student's own teachers pull it down
        alpha = _float(r.params.get("distill.alpha"))
        lower = [f"distill.alpha={alpha / 2:g}"] if alpha else []
        return Finding("capacity_mismatch", "Capacity mismatch collapse", "critical", evidence,
                       TEACHERLESS_FIXES[mechanism], _applicable(r, lower))
    gap = _ratio(_acc(r, _own_teacher(r)), baseline)
    if gap is None or gap < CAPACITY_GAP - EPS:  # a small gap is not what the student failed to bridge
        return None
    evidence["gap_ratio"] = gap
    fix, overrides = _capacity_fix(r, mechanism)
    return Finding("capacity_mismatch", "Capacity mismatch collapse", "critical", evidence, fix,
                   _applicable(r, overrides))


def _capacity_fix(r: StudyResults, mechanism: str) -> tuple[str, list[str]]:
    """One more assistant than the chain has, sized by the advisor; a teacher of another view cannot be
    bridged by a chain, so a cross-modal study gets a smaller teacher (the first assistant's size)."""
    fix = "Insert a teacher assistant of intermediate capacity, or distill from a smaller teacher."
    situation = measured_situation(r)
    have = len(_assistant_roles(r))
    chain = advisor.interpolate_assistants(advisor.facts(situation), have + 1) if situation else []
    if not chain or not all(a.name for a in chain):
        return fix, []
    raw = study_config(r)
    if mechanism == "cross_modal":
        first = chain[0]
        return (f"Distill from a smaller teacher: {first.name} of width {first.width} and depth {first.depth}.",
                [f"teacher.name={first.name}", f"teacher.width={first.width}", f"teacher.depth={first.depth}"])
    sizes = ", ".join(f"{a.name} of width {a.width} and depth {a.depth}" for a in chain)
    fix = (f"{'Use' if have else 'Insert'} {len(chain)} teacher assistant{'s' if len(chain) > 1 else ''} "
           f"({sizes}, sized by geometric interpolation of the parameter count), or distill from a smaller teacher.")
    models = [{"name": a.name, "width": a.width, "depth": a.depth} for a in chain]
    switch = _mechanism_switch(raw, "progressive") if mechanism != "progressive" else []
    return fix, [*switch, _override("distill.assistants", models), *_stage_lists(raw, None)]


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _knowledge_missing(r: StudyResults) -> dict[str, float] | None:
    """The project's evidence that the teacher's knowledge did not reach the student's decisions: the teacher
    holds SIMILAR_GAP more than the student alone, the KD term converged (the student reproduces what it was
    taught), and the student keeps less than KEPT_ADVANTAGE of the teacher's advantage over the baseline. None
    when it does not hold or cannot be measured."""
    s, t, b = _acc(r, "student"), _acc(r, _own_teacher(r)), _acc(r, "baseline")
    curve = r.history.get("student", {}).get("train/loss_kd", [])
    if None in (s, t, b) or len(curve) < 2 or curve[0] <= 0:
        return None
    gap = _ratio(t, b)
    converged = curve[-1] / curve[0] < CONVERGED_SHARE
    if gap is None or gap < SIMILAR_GAP - EPS or not converged or _kept(s, t, b) >= KEPT_ADVANTAGE - EPS:
        return None
    return {"kd_loss_first": curve[0], "kd_loss_last": curve[-1], "student_acc": s, "teacher_acc": t,
            "baseline_acc": b, "kept_advantage": _kept(s, t, b)}


def _copied_confidences(r: StudyResults) -> dict[str, float] | None:
    """The project's second rule, on validation predictions: the student's distribution matches the teacher's
    (KL below LOW_KL) while its top-1 agreement stays under LOW_AGREEMENT, with knowledge to give."""
    upper = _own_teacher(r)
    t, s = _val(r, upper, "probs"), _val(r, "student", "probs")
    gap = _ratio(_acc(r, upper), _acc(r, "baseline"))
    if t is None or s is None or gap is None or gap < SIMILAR_GAP - EPS:
        return None
    kl, agree = _kl(_clipped(t), _clipped(s)), float((t.argmax(1) == s.argmax(1)).mean())
    return {"kl_teacher_student": kl, "agreement": agree} if kl < LOW_KL and agree < LOW_AGREEMENT else None


def _temperature(params: dict[str, str]) -> tuple[str, str]:
    """What a temperature sweep varies, as logged."""
    return params.get("distill.temperature", ""), params.get("distill.stage_temperatures", "")


def _other_temperatures(r: StudyResults, siblings: list[StudyResults]) -> dict[tuple[str, str], float]:
    """The best student validation accuracy of the siblings at each temperature other than this study's."""
    own, best = _temperature(r.params), {}
    for sibling in siblings:
        key, acc = _temperature(sibling.params), _acc(sibling, "student")
        if key != own and acc is not None:
            best[key] = max(acc, best.get(key, -math.inf))
    return best


def _knowledge_type(r: StudyResults) -> str:
    """response, feature, relation or multi: the study's tag, else its method's."""
    method = r.params.get("distill.method", "")
    return r.params.get("kd.knowledge") or (METHODS.entry(method).obj.knowledge if method in METHODS else "")


KNOWLEDGE_SWITCH = {"response": "multi", "feature": "rkd", "relation": "fitnet"}  # to transfer another type


def _knowledge_fix(r: StudyResults) -> tuple[str, list[str]]:
    method = KNOWLEDGE_SWITCH.get(_knowledge_type(r))
    if method is None:
        return ("Transfer another kind of knowledge, matched to what the student's architecture can represent.",
                [])
    raw = study_config(r)
    resets = [_override(f"distill.{name}", _default(name)) for name in ("params", "stage_params")
              if _distill(raw).get(name)]
    what = {"multi": "outputs and relations together (multi)", "rkd": "relations (rkd)",
            "fitnet": "intermediate features (fitnet)"}[method]
    return (f"Transfer another kind of knowledge: {what}, matched to what the student's architecture can "
            "represent.", [f"distill.method={method}", *resets])


def knowledge_confusion(r: StudyResults, siblings: list[StudyResults] | None = None) -> Finding | None:
    """The survey's temperature rule where siblings at other temperatures exist, on the project's evidence
    that the student mimics the teacher while deciding wrongly (module docstring)."""
    evidence = (_knowledge_missing(r) or {}) | (_copied_confidences(r) or {})
    if not evidence:
        return None
    fix, overrides = _knowledge_fix(r)
    overrides = _applicable(r, overrides)
    others = _other_temperatures(r, siblings or [])
    if len(others) >= SWEEP_MIN:
        best = max(others.values())
        if best > evidence.get("student_acc", _acc(r, "student") or 0) + NO_GAIN_MARGIN + EPS:
            return None  # another temperature does better: the temperature, not the knowledge type, was wrong
        evidence |= {"other_temperatures": float(len(others)), "best_other_temperature_acc": best}
        return Finding("knowledge_confusion", "Knowledge type confusion", "critical", evidence,
                       "No temperature helps: " + fix[0].lower() + fix[1:], overrides)
    return Finding("knowledge_confusion", "Knowledge type confusion (project's rule: KD loss; temperatures "
                   "untested)", "warning", evidence,
                   "Run the temperature sweep to confirm (the survey's test); if no temperature helps: "
                   + fix[0].lower() + fix[1:], overrides, _sweep(r, others))


def _sweep(r: StudyResults, others: dict[tuple[str, str], float]) -> dict[str, list[Any]]:
    """The temperatures of SWEEP_TEMPERATURES not run yet (none for a chain with per-stage temperatures)."""
    if r.params.get("distill.stage_temperatures", "[]") not in ("", "[]"):
        return {}
    done = {_float(t) for t, _ in others} | {_float(r.params.get("distill.temperature"))}
    todo = [t for t in SWEEP_TEMPERATURES if t not in done]
    return {"distill.temperature": todo} if todo else {}


def overconfidence(r: StudyResults) -> Finding | None:
    """The survey's rule: the student's validation entropy is below the teacher's while it is less accurate
    (critical). The project's extension, a warning: a student far worse calibrated than both teacher and
    baseline (ECE above both by ECE_EXCESS), in the overconfident direction (mean validation confidence above
    validation accuracy, so it needs the validation predictions); an underconfident student does not count."""
    s_ent, t_ent = r.metric("student", "val/entropy"), r.metric("teacher", "val/entropy")
    s_acc, t_acc = _acc(r, "student"), _acc(r, "teacher")
    s_ece, t_ece, b_ece = (r.metric(role, "val/ece") for role in ("student", "teacher", "baseline"))
    if None not in (s_ent, t_ent, s_acc, t_acc) and s_ent < t_ent and s_acc < t_acc:
        return Finding("overconfidence", "Teacher overconfidence amplification", "critical",
                       {"student_entropy": s_ent, "teacher_entropy": t_ent, "student_acc": s_acc,
                        "teacher_acc": t_acc}, *_calming_fix(r))
    if None in (s_ece, t_ece, b_ece) or s_ece <= max(t_ece, b_ece) + ECE_EXCESS:
        return None
    probs, labels = _val(r, "student", "probs"), _val_labels(r)
    if probs is None or labels is None:  # miscalibrated, but which way cannot be told: not measurable
        return None
    gap = float(probs.max(1).mean() - (probs.argmax(1) == labels).mean())
    if gap <= 0:  # underconfident: not what this mode is about
        return None
    evidence = {"student_ece": s_ece, "teacher_ece": t_ece, "baseline_ece": b_ece, "student_overconfidence": gap}
    return Finding("overconfidence", "Teacher overconfidence amplification (project's rule: calibration error)",
                   "warning", evidence, *_calming_fix(r))


def _softer(temperature: float) -> float:
    return max(2 * temperature, SOFT_TEMPERATURE)


def _calming_fix(r: StudyResults) -> tuple[str, list[str]]:
    """Softer targets (twice the temperature, at least SOFT_TEMPERATURE; every stage of a chain), label
    smoothing where the student has none, and labels that weigh enough for the smoothing to act (alpha at
    most LABEL_ALPHA)."""
    distill = _distill(study_config(r))
    stages = distill.get("stage_temperatures") or []
    temperature = _softer(_float(r.params.get("distill.temperature")) or SOFT_TEMPERATURE)
    if stages:
        fix, overrides = "Raise every stage's temperature", [
            _override("distill.stage_temperatures", [_softer(t) for t in stages])]
    else:
        fix, overrides = f"Raise the temperature to {temperature:g}", [f"distill.temperature={temperature:g}"]
    if "label_smoothing" in DistillConfig.model_fields and not distill.get("label_smoothing"):
        overrides.append(f"distill.label_smoothing={LABEL_SMOOTHING:g}")
        fix += f", smooth the labels by {LABEL_SMOOTHING:g}"
    alpha = _float(r.params.get("distill.alpha"))
    if alpha is not None and alpha > LABEL_ALPHA + EPS:
        overrides.append(f"distill.alpha={LABEL_ALPHA:g}")
        fix += (f" and give the labels weight {1 - LABEL_ALPHA:g} (alpha {LABEL_ALPHA:g}): smoothing acts on the "
                "label term only")
    return fix + "; or use several diverse teachers.", _applicable(r, overrides)


DETECTORS = (cross_modal_failure, progressive_degradation, capacity_mismatch, knowledge_confusion, overconfidence)


def detect(results: StudyResults, siblings: list[StudyResults] | None = None) -> list[Finding]:
    """The failure mode the study shows, by precedence: the first that fires explains the rest (one cause, one
    finding). ``siblings`` are the same study at other temperatures (:mod:`kdcore.siblings`)."""
    for detector in DETECTORS:
        found = detector(results, siblings) if detector is knowledge_confusion else detector(results)
        if found is not None:
            return [found]
    return []


# --- the ten gates ------------------------------------------------------------------------------------
def _missing(number: int, name: str, reason: str) -> Gate:
    return Gate(number, name, "not measurable", reason=reason)


def _verdict(ok: bool) -> str:
    return "passed" if ok else "failed"


def gate_accuracy(r: StudyResults) -> Gate:
    name = "Student >= 95% of teacher or >= 105% of baseline (validation)"
    s, t, b = (_acc(r, role) for role in ("student", "teacher", "baseline"))
    if s is None or t is None or b is None:
        return _missing(1, name, "needs validation accuracy of student, teacher and baseline")
    ratios = {"student_over_teacher": s / t if t else math.nan, "student_over_baseline": s / b if b else math.nan}
    return Gate(1, name, _verdict(_accuracy_ok(s, t, b)), ratios)


def gate_held_out(r: StudyResults) -> Gate:
    """The student's train - validation gap against the baseline's: distillation must not buy its training
    accuracy with a wider gap (GENERALISATION_MARGIN)."""
    name = "Transfer verified on held-out data: the student generalises as well as the baseline"
    gaps = {}
    for role in ("student", "baseline"):
        train, val = r.metric(role, "train/acc"), _acc(r, role)
        if train is None or val is None:
            return _missing(2, name, f"needs training and validation accuracy of the {role}")
        gaps[f"{role}_gap"] = train - val
    excess = gaps["student_gap"] - gaps["baseline_gap"]
    ok = excess <= GENERALISATION_MARGIN + EPS
    return Gate(2, name, _verdict(ok), gaps | {"excess_points": _pts(excess)},
                "" if ok else f"the student's train-validation gap is {_pts(excess):g} points wider than the "
                f"baseline's (at most {_pts(GENERALISATION_MARGIN):g}): it fits its training inputs, not what "
                "transfers")


def gate_capacity(r: StudyResults) -> Gate:
    """The capacity table on teacher/baseline (validation): below 1.5x direct; 1.5-3x at least one assistant;
    3x or more at least MULTI_STEP; every stage of a chain bridges at most MAX_STAGE_GAP."""
    name = "Capacity gap assessed; the chain the capacity table asks for"
    gap = _ratio(_acc(r, "teacher"), _acc(r, "baseline"))
    if gap is None:
        return _missing(3, name, "needs teacher and baseline validation accuracy; a study without a teacher "
                                 "(online, self) has no gap to bridge")
    assistants = _assistant_roles(r)
    numbers = {"performance_ratio": gap, "assistants": float(len(assistants))}
    chain = [_acc(r, role) for role in ("teacher", *assistants, "student")]
    if assistants and all(chain):
        numbers["largest_stage_ratio"] = max(up / low for up, low in pairwise(chain))
    needed = MULTI_STEP if gap >= PROGRESSIVE_GAP - EPS else 1 if gap >= CAPACITY_GAP - EPS else 0
    if len(assistants) < needed:
        return Gate(3, name, "failed", numbers, f"a {gap:.2f}x gap needs at least {needed} assistant"
                    f"{'s' if needed > 1 else ''}; the study has {len(assistants)}")
    if assistants and numbers.get("largest_stage_ratio", math.inf) > MAX_STAGE_GAP + EPS:
        return Gate(3, name, "failed", numbers, f"a stage of the chain still bridges over {MAX_STAGE_GAP:g}x")
    return Gate(3, name, "passed", numbers, "direct distillation fits the gap" if not needed else
                f"{len(assistants)} assistant(s) for a {gap:.2f}x gap; every stage bridges at most {MAX_STAGE_GAP:g}x")


def gate_knowledge(r: StudyResults) -> Gate:
    """Fails on the knowledge-confusion evidence (the project's rule): the student reproduced what it was
    taught, yet the teacher's knowledge did not reach its decisions."""
    name = "Knowledge type fits both architectures"
    knowledge = _knowledge_type(r)
    s, t, b = _acc(r, "student"), _acc(r, _own_teacher(r)), _acc(r, "baseline")
    curve = r.history.get("student", {}).get("train/loss_kd", [])
    if not knowledge or None in (s, t, b) or len(curve) < 2 or curve[0] <= 0:
        return _missing(4, name, "needs the knowledge type, the student's KD-term curve and the validation "
                                 "accuracy of student, teacher and baseline")
    numbers = {"kd_loss_share": curve[-1] / curve[0], "performance_ratio": _ratio(t, b) or math.nan,
               "student_over_teacher": s / t if t else math.nan}
    missing = _knowledge_missing(r)
    if missing:
        return Gate(4, name, "failed", numbers, f"{knowledge} knowledge did not reach the student: its KD term fell "
                    f"to {numbers['kd_loss_share']:.0%} of its first epoch, yet it gained "
                    f"{missing['kept_advantage']:.0%} of the teacher's advantage over the baseline")
    return Gate(4, name, "passed", numbers, f"{knowledge} terms read what both models expose (checked when the "
                "config was validated), and the knowledge reached the student or there was little to transfer")


def gate_shift(r: StudyResults) -> Gate:
    name = "Evaluated on a shifted distribution"
    shift, baseline, k = r.metric("student", "shift/acc"), r.metric("baseline", "shift/acc"), _classes(r)
    if shift is None or not k:
        return _missing(5, name, "no shifted-split accuracy logged for the student")
    numbers = {"shift_acc": shift, "chance": 1 / k} | ({"baseline_shift_acc": baseline} if baseline is not None else {})
    if _at_chance(shift, 1 / k):
        return Gate(5, name, "failed", numbers, f"the student is at chance on the shifted split (within "
                                                f"{_pts(RANDOM_MARGIN):g} points of 1/K)")
    if baseline is not None and baseline - shift > COLLAPSE_MARGIN + EPS:
        return Gate(5, name, "failed", numbers, f"the student is {_pts(baseline - shift):g} points below the "
                                                "baseline on the shifted split")
    return Gate(5, name, "passed", numbers)


def gate_no_failure(findings: list[Finding]) -> Gate:
    return Gate(6, "No failure mode detected", _verdict(not findings), {"findings": float(len(findings))},
                ", ".join(f.code for f in findings))


def gate_compression(r: StudyResults) -> Gate:
    """Documented, and real: a student with no fewer parameters than its teacher compresses nothing."""
    name = "Compression documented: parameters, latency, memory"
    keys = {"params": "model/params", "latency": "model/latency_ms", "memory": "model/memory_mb"}
    numbers = {}
    for label, key in keys.items():
        t, s = r.metric("teacher", key), r.metric("student", key)
        if not t or not s:
            return _missing(7, name, f"no {label} measured for teacher and student")
        numbers[f"{label}_ratio"] = t / s
    if numbers["params_ratio"] <= 1 + EPS:
        return Gate(7, name, "failed", numbers, "the student has no fewer parameters than the teacher: "
                                                "nothing is compressed")
    return Gate(7, name, "passed", numbers)


def _sides(r: StudyResults) -> dict[str, Any]:
    """The advisor's raw situation from what a study measured: sizes, and the teacher's and the baseline's
    validation accuracy (the student trained alone)."""
    p = r.params
    config = study_config(r) or {}

    def side(role: str, accuracy_role: str) -> dict[str, Any]:
        spec = {"model": p.get(f"{role}.name"), "params": r.metric(role, "model/params"),
                "accuracy": _acc(r, accuracy_role)}
        for key in ("width", "depth"):
            value = p.get(f"{role}.{key}", "")
            spec[key] = int(value) if value.isdigit() else None
        spec["params"] = int(spec["params"]) if spec["params"] else None
        spec |= {key: value for key in ("path", "kwargs", "features") if (value := config.get(role, {}).get(key))}
        return spec

    need = {"response": "decisions", "feature": "patterns", "relation": "structure"}.get(p.get("kd.knowledge", ""))
    name = p.get("data.name") or None
    source = name in DATASETS and DATASETS.entry(name).meta.get("source") and "data" in config
    raw = {**({"data": config["data"]} if source else {"dataset": name}), "teacher": side("teacher", "teacher"),
           "student": side("student", "baseline"), "needs": [need or "decisions"]}
    names = list(DATASETS.entry(p["data.name"]).meta.get("views", {})) if p.get("data.name") in DATASETS else []
    if p.get("distill.mechanism") == "cross_modal" and names:  # the sensors each side saw are facts of the study
        raw["teacher"]["modality"] = p.get("distill.teacher_view") or names[0]
        raw["student"]["modality"] = p.get("distill.student_view") or names[-1]
    return raw


def measured_situation(r: StudyResults, flags: dict[str, Any] | None = None) -> advisor.Situation | None:
    """The advisor's situation rebuilt from what a study measured on validation, with ``flags`` (what a
    recorded rationale holds, :class:`kdcore.advisor.RecordedAdvice`) for the inputs a study cannot measure.
    None when the study's models are not registered."""
    raw = _sides(r)
    try:
        if flags is not None:
            return advisor.situation_from_flags(flags, raw["teacher"], raw["student"], raw.get("dataset"),
                                                raw.get("data"))
        return advisor.situation(raw)
    except advisor.AdviceError:
        return None


def _accepted(r: StudyResults) -> list[str]:
    """``distill.accepted_boundaries`` as logged (the string form of a list)."""
    value = _param_value("distill", ["accepted_boundaries"], r.params.get("distill.accepted_boundaries", ""))
    return [str(v) for v in value] if isinstance(value, list) else []


def gate_mechanism(r: StudyResults) -> Gate:
    """A rationale the advisor wrote is re-advised with the flags it recorded on the validation numbers; free
    text (or none) on the numbers with default flags. The advice must name the mechanism recorded (and run),
    and every NOT-FOR boundary that applies must be accepted in ``distill.accepted_boundaries``."""
    name = "Transfer mechanism justified"
    used = r.params.get("distill.mechanism")
    text = r.params.get("distill.rationale") or r.params.get("kd.advice")
    recorded = advisor.parse_rationale(text)
    situation = measured_situation(r, recorded.flags if recorded else None)
    if situation is None or not used:
        return _missing(8, name, "the study's models cannot be re-assessed by the advisor")
    advice = advisor.advise(situation)
    numbers = {k: v for k, v in (("parameter_ratio", advice.parameter_ratio),
                                 ("performance_ratio", advice.performance_ratio)) if v is not None}
    claimed = recorded.mechanism if recorded else used
    basis = "the rationale's recorded situation" if recorded else ("default flags" if not text else
                                                                  "default flags (the rationale is free text)")
    problems = []
    if advice.mechanism != claimed:
        problems.append(f"{'recorded' if recorded else 'ran'} {claimed}, but the advice today on the validation "
                        f"numbers with {basis} is {advice.mechanism}"
                        + ("" if recorded else " (kdx advise records the situation's flags with the rationale)"))
    if recorded and recorded.mechanism != used:
        problems.append(f"the rationale records {recorded.mechanism}, but the study ran {used}")
    boundaries = list(dict.fromkeys([*(recorded.boundaries if recorded else []), *advice.boundaries]))
    open_ = [b for b in boundaries if b not in _accepted(r)]
    numbers["open_boundaries"] = float(len(open_))
    if open_:
        problems.append(f"NOT-FOR boundary {', '.join(open_)} applies and is not in distill.accepted_boundaries")
    if problems:
        return Gate(8, name, "failed", numbers, "; ".join(problems))
    return Gate(8, name, "passed", numbers, f"the advice today on the validation numbers with {basis} is "
                f"{advice.mechanism}, as {'recorded' if recorded else 'run'}"
                + (f"; accepted boundaries: {', '.join(boundaries)}" if boundaries else ""))


def _hard_examples(r: StudyResults) -> np.ndarray | None:
    """Validation examples the teacher gets wrong, or is least confident on (lowest decile)."""
    probs, labels = _val(r, "teacher", "probs"), _val(r, "teacher", "labels")
    if probs is None or labels is None:
        return None
    confidence = probs.max(1)
    return (probs.argmax(1) != labels) | (confidence <= np.quantile(confidence, 0.1))


def gate_boundary(r: StudyResults) -> Gate:
    name = "Boundary conditions: where the teacher fails or hesitates (validation)"
    hard = _hard_examples(r)
    student, baseline = _val(r, "student", "probs"), _val(r, "baseline", "probs")
    if hard is None or student is None or baseline is None or not hard.any():
        return _missing(9, name, "needs validation predictions of teacher, student and baseline")
    labels = _val(r, "teacher", "labels")[hard]
    s_acc = float((student[hard].argmax(1) == labels).mean())
    b_acc = float((baseline[hard].argmax(1) == labels).mean())
    return Gate(9, name, _verdict(s_acc >= b_acc - COLLAPSE_MARGIN - EPS),
                {"examples": float(hard.sum()), "student_acc": s_acc, "baseline_acc": b_acc})


def gate_preservation(r: StudyResults) -> Gate:
    name = "Knowledge preserved on the classes the teacher masters (validation)"
    classes = sorted({int(k.rsplit("_", 1)[1]) for k in r.metrics.get("teacher", {}) if k.startswith("val/acc_class_")})
    teacher = {k: r.metric("teacher", f"val/acc_class_{k}") for k in classes}
    student = {k: r.metric("student", f"val/acc_class_{k}") for k in classes}
    if not classes or any(v is None for v in student.values()):
        return _missing(10, name, "needs per-class validation accuracy of teacher and student")
    mastered = [k for k in classes if (teacher[k] or 0) >= MASTERED]
    if not mastered:
        return _missing(10, name, f"the teacher masters no class (none at {MASTERED:.0%} or more)")
    lost = [k for k in mastered if student[k] < KEEP_MASTERED * teacher[k] - EPS]
    return Gate(10, name, _verdict(not lost), {"mastered_classes": float(len(mastered)), "lost": float(len(lost))},
                f"lost classes: {', '.join(map(str, lost))}" if lost else "")


def evaluate_gates(results: StudyResults, findings: list[Finding]) -> list[Gate]:
    """All ten gates, in the survey's order."""
    return [gate_accuracy(results), gate_held_out(results), gate_capacity(results), gate_knowledge(results),
            gate_shift(results), gate_no_failure(findings), gate_compression(results), gate_mechanism(results),
            gate_boundary(results), gate_preservation(results)]

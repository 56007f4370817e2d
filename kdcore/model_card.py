"""The model card of an exported role, in Markdown: what it is, how accurate it is (over seeds when the study has
seed siblings), what it costs as exported, and what the study's diagnosis found.

Seed siblings are the finished studies of the same experiment whose configs are equal but for ``train.seed``
(and the ``tracking`` keys that only file a study), compared as :mod:`kdcore.siblings` compares temperature
siblings. With two seeds or more a number is given as mean ± the half-width of a 95% Student-t interval over
the seeds; with one seed it is that seed's value, said to be one seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from kdcore.seed_stats import Estimate, mean_interval
from kdcore.siblings import SEED, seed_sibling_ids
from kdcore.tracker import Tracker

CARD_LIMIT = 5000  # characters: MLflow's SQL stores keep no longer a model or version description
CONFIDENCE = 0.95
ACCURACIES = {"teacher": "study/teacher_acc", "baseline": "study/baseline_acc", "student": "study/student_acc"}
RATIOS = {"student / teacher": "study/acc_ratio_teacher", "student / baseline": "study/acc_ratio_baseline"}
SHOWN_NUMBERS = 3  # numbers per gate in the card's table


@dataclass
class Deployment:
    """What the exported artifact costs, measured on it: latency on a batch of test inputs (and the teacher's in
    PyTorch on the same batch), parameters and file size; ``check`` is the ONNX agreement, when checked."""

    runtime: str
    latency_ms: float  # per batch
    batch: int
    params: int
    file_bytes: int
    artifact: str  # the weights file the size is of ("" = the whole folder)
    check: str | None = None
    teacher_runtime: str | None = None
    teacher_latency_ms: float | None = None
    teacher_params: int | None = None

    def speedup(self) -> float | None:
        return self.teacher_latency_ms / self.latency_ms if self.teacher_latency_ms and self.latency_ms else None

    def summary(self) -> str:
        """One line: the exported model's latency, against the teacher's when the study has one."""
        own = f"{self.latency_ms:.3f} ms per batch of {self.batch} in {self.runtime}"
        if self.teacher_latency_ms is None:
            return f"{own}; {self.params:,} parameters (no teacher to compare with)"
        return (f"{own}; teacher {self.teacher_latency_ms:.3f} ms in {self.teacher_runtime}: speed-up "
                f"{self.speedup():.2f}x; {self.params:,} vs {self.teacher_params:,} parameters")


# --- seed siblings ------------------------------------------------------------------------------------
def seed_estimates(tracker: Tracker, study_id: str) -> tuple[dict[str, Estimate], list[str]]:
    """Each accuracy and ratio of the card over the study and its seed siblings, and the seeds they come from."""
    runs = [tracker.get_run(study_id), *(tracker.get_run(s) for s in seed_sibling_ids(tracker, study_id))]
    out = {}
    for key in (*ACCURACIES.values(), *RATIOS.values()):
        values = [run.metrics[key] for run in runs if key in run.metrics and math.isfinite(run.metrics[key])]
        if values:
            out[key] = mean_interval(values, CONFIDENCE)
    return out, [run.params.get(SEED, "?") for run in runs]


# --- the diagnosis ----------------------------------------------------------------------------------------
def diagnosis(tracker: Tracker, study_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The study's findings and gates as it logged them; a study never diagnosed is diagnosed now (and keeps it,
    as after ``kdx diagnose``)."""
    try:
        findings = json.loads(tracker.read_bytes(study_id, "findings.json"))
        gates = json.loads(tracker.read_bytes(study_id, "gates.json"))
        if isinstance(findings, list) and isinstance(gates, list):
            return findings, gates
    except Exception:  # not there (FileNotFoundError, or MLflow's own error type), or not JSON
        pass
    from kdcore.study_results import diagnose  # torch and the diagnostics: only when a card needs them

    found, gates = diagnose(tracker, study_id)
    return [f.to_dict() for f in found], [g.to_dict() for g in gates]


# --- the card ---------------------------------------------------------------------------------------------
def model_card(tracker: Tracker, study_id: str, role: str, fmt: str, deployment: Deployment,
               name: str | None = None) -> str:
    """The Markdown card of ``role`` of ``study_id`` exported as ``fmt`` (registered as ``name``)."""
    study = tracker.get_run(study_id)
    tags, params = study.tags, study.params
    title = name or f"{tags.get('kd.student', 'student')} distilled from {tags.get('kd.teacher', '?')}"
    method = tags.get("kd.method", "?")
    temperature = f", T={params['distill.temperature']}" if params.get("distill.temperature") else ""
    alpha = f", alpha={params['distill.alpha']}" if params.get("distill.alpha") else ""
    lines = [f"# {title}", "",
             f"Role **{role}** of study `{study_id}` ({study.name}), exported by kdx as **{fmt}**.", "",
             "| | |", "| --- | --- |",
             f"| teacher | {tags.get('kd.teacher', '-')} |", f"| student | {tags.get('kd.student', '-')} |",
             f"| method | {method} ({tags.get('kd.knowledge', '-')} knowledge){temperature}{alpha} |",
             f"| mechanism | {tags.get('kd.mechanism', '-')} |", f"| dataset | {tags.get('kd.dataset', '-')} |", ""]
    lines += _accuracy_section(tracker, study_id, study.metrics, params.get(SEED, "?"))
    lines += _deployment_section(deployment, role)
    findings, gates = diagnosis(tracker, study_id)
    lines += _diagnosis_section(findings, gates)
    return "\n".join(lines).rstrip() + "\n"


def _accuracy_section(tracker: Tracker, study_id: str, metrics: dict[str, float], seed: str) -> list[str]:
    estimates, seeds = seed_estimates(tracker, study_id)
    rows = [(label, key, True) for label, key in ACCURACIES.items()] + [(k, v, False) for k, v in RATIOS.items()]
    rows = [row for row in rows if row[1] in metrics]
    lines = ["## Accuracy (test split)", ""]
    if len(seeds) > 1:
        lines += [f"| | this study (seed {seed}) | over {len(seeds)} seeds: mean ± 95% t-interval |",
                  "| --- | --- | --- |"]
        lines += [f"| {label} | {Estimate(metrics[key], None, 1).text(percent)} | {estimates[key].text(percent)} |"
                  for label, key, percent in rows]
        lines += ["", f"Seeds {', '.join(seeds)}: studies equal to this one but for train.seed."]
    else:
        lines += [f"| | seed {seed} |", "| --- | --- |"]
        lines += [f"| {label} | {Estimate(metrics[key], None, 1).text(percent)} |" for label, key, percent in rows]
        lines += ["", "One seed: no finished study equals this one but for train.seed, so there is no interval; "
                      "run it again with other train.seed values for one."]
    return [*lines, ""]


def _deployment_section(d: Deployment, role: str) -> list[str]:
    size = f"{d.file_bytes / 1024:,.1f} KiB" + (f" ({d.artifact})" if d.artifact else " (the folder)")
    lines = ["## Deployment (measured on the exported artifact)", "",
             f"| | exported {role} | teacher |", "| --- | --- | --- |",
             f"| runtime (CPU) | {d.runtime} | {d.teacher_runtime or '-'} |",
             f"| latency, batch of {d.batch} test inputs | {d.latency_ms:.3f} ms | "
             + (f"{d.teacher_latency_ms:.3f} ms |" if d.teacher_latency_ms is not None else "- |"),
             f"| parameters | {d.params:,} | " + (f"{d.teacher_params:,} |" if d.teacher_params else "- |"),
             f"| file size | {size} | - |", ""]
    if d.speedup() is not None and d.teacher_params:
        lines += [f"Speed-up over the teacher on the same batch: {d.speedup():.2f}x (above 1: faster); "
                  f"{d.teacher_params / max(d.params, 1):.1f}x fewer parameters.", ""]
    if d.check:
        lines += [f"ONNX check: {d.check}.", ""]
    return lines


def _diagnosis_section(findings: list[dict[str, Any]], gates: list[dict[str, Any]]) -> list[str]:
    lines = ["## Findings", ""]
    if not findings:
        lines.append("No failure mode detected.")
    for f in findings:
        fix = " ".join(str(f.get("fix", "")).split())
        lines.append(f"- **{f.get('title', f.get('code'))}** ({f.get('severity', '?')}): "
                     f"{fix[:240] + ('…' if len(fix) > 240 else '')}")
    statuses = [g.get("status") for g in gates]
    lines += ["", f"## Quality gates: {statuses.count('passed')} of {len(gates)} passed, "
                  f"{statuses.count('failed')} failed, {statuses.count('not measurable')} not measurable", "",
              "| # | gate | result | numbers |", "| --- | --- | --- | --- |"]
    for g in sorted(gates, key=lambda g: g.get("number", 0)):
        numbers = ", ".join(f"{k} {v:.3g}" for k, v in list((g.get("numbers") or {}).items())[:SHOWN_NUMBERS]
                            if isinstance(v, int | float))
        result = {"passed": "pass", "failed": "FAIL"}.get(g.get("status"), g.get("status"))
        lines.append(f"| {g.get('number')} | {g.get('name')} | {result} | {numbers} |")
    return [*lines, ""]

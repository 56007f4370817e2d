"""A study read back: its results for the diagnostics, the findings and gates logged on it, and its own
numbers (role accuracies and the student's ratios)."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from kdcore.diagnostics import Finding, Gate, StudyResults, detect, evaluate_gates
from kdcore.role_artifacts import parse_predictions, read_predictions
from kdcore.siblings import temperature_sibling_ids, temperature_siblings
from kdcore.tracker import DIAGNOSIS_METRICS, STUDY_ROLE, Tracker

log = logging.getLogger(__name__)


def study_results(tracker: Tracker, study_id: str) -> StudyResults:
    """What a study logged, read back for diagnostics: final metrics, config, KD curve, predictions."""
    parent = tracker.get_run(study_id)
    params = dict(parent.params) | {"kd.knowledge": parent.tags.get("kd.knowledge", "")}
    results = StudyResults({}, params)
    for run in tracker.find_runs({"kd.study_id": study_id}):
        role = run.tags.get("kd.role")
        if not role:
            log.warning("study %s: run %s has no kd.role tag; it is left out of the diagnosis", study_id, run.run_id)
            continue
        if role == STUDY_ROLE or run.status != "FINISHED":
            continue
        results.metrics[role] = dict(run.metrics)
        results.history[role] = {"train/loss_kd": [v for _, v in tracker.metric_history(run.run_id, "train/loss_kd")]}
        predictions = _finished_predictions(tracker, run.run_id)
        if predictions is not None:
            results.predictions[role] = predictions
            results.num_classes = predictions["test_probs"].shape[1]
    return results


_PREDICTIONS: OrderedDict[tuple[str, str], dict[str, np.ndarray] | None] = OrderedDict()
PREDICTIONS_KEPT = 256  # role runs whose predictions stay in memory; a sweep's diagnoses read each many times


def _finished_predictions(tracker: Tracker, run_id: str) -> dict[str, np.ndarray] | None:
    """A FINISHED role run's predictions, read once per process: they never change after the run ends."""
    key = (tracker.uri, run_id)
    if key not in _PREDICTIONS:
        _keep(key, read_predictions(tracker, run_id))
    _PREDICTIONS.move_to_end(key)
    return _PREDICTIONS[key]


def remember_predictions(tracker: Tracker, run_id: str, data: bytes) -> None:
    """The ``predictions.npz`` a role run has just logged, kept for the diagnosis that follows in this process,
    which then reads nothing back from the store."""
    _keep((tracker.uri, run_id), parse_predictions(data, run_id))


def _keep(key: tuple[str, str], predictions: dict[str, np.ndarray] | None) -> None:
    _PREDICTIONS[key] = predictions
    while len(_PREDICTIONS) > PREDICTIONS_KEPT:
        _PREDICTIONS.popitem(last=False)


def diagnose(tracker: Tracker, study_id: str) -> tuple[list[Finding], list[Gate]]:
    """Compute findings and gates of a study and log them on it (artifacts, tag, metrics)."""
    results = study_results(tracker, study_id)
    findings = detect(results, siblings=temperature_siblings(tracker, study_id))
    gates = evaluate_gates(results, findings)
    tracker.log_bytes(study_id, "findings.json", json.dumps([f.to_dict() for f in findings], indent=1).encode())
    tracker.log_bytes(study_id, "gates.json", json.dumps([g.to_dict() for g in gates], indent=1).encode())
    tracker.set_tags(study_id, {"kd.findings": ",".join(f.code for f in findings)})
    statuses = [g.status for g in gates]
    counts = (len(findings), statuses.count("passed"), statuses.count("failed"), statuses.count("not measurable"))
    tracker.log_metrics(study_id, {key: float(n) for key, n in zip(DIAGNOSIS_METRICS, counts, strict=True)}, step=0)
    tracker.flush(study_id)  # a diagnosis of an old study is its only write: it must land
    return findings, gates


def refresh_after(tracker: Tracker, study_ids: list[str], in_order: bool = True) -> None:
    """Diagnose again each of ``study_ids`` (finished without refreshing their siblings) that has a temperature
    sibling among those finished after it (``in_order``: the list is in finishing order; else any sibling in
    the list counts): what :func:`refresh_siblings` does after each study, done once for a whole sweep."""
    order = {study_id: i for i, study_id in enumerate(study_ids)}
    for i, study_id in enumerate(study_ids):
        after = -1 if not in_order else i
        if any(order.get(sibling, -2) > after and sibling != study_id
               for sibling in temperature_sibling_ids(tracker, study_id)):
            try:
                diagnose(tracker, study_id)
            except Exception as err:  # as in refresh_siblings: a damaged study keeps its findings
                log.warning("study %s: could not diagnose it again after its sweep: %s", study_id, err)


def refresh_siblings(tracker: Tracker, study_id: str) -> None:
    """Diagnose again the studies that differ from a finished one only in temperature: the survey's
    knowledge-confusion test compares them, so each new temperature can change their verdict. A sibling
    that cannot be read again keeps its findings (logged as a warning); the finished study is not touched."""
    for sibling in temperature_sibling_ids(tracker, study_id):
        try:
            diagnose(tracker, sibling)
        except Exception as err:  # a damaged sibling must not fail the study that just finished
            log.warning("study %s: could not diagnose its temperature sibling %s again: %s", study_id, sibling, err)


def study_metrics(roles: Mapping[str, Any]) -> dict[str, float]:
    """The study's own numbers from its roles (each with final ``metrics``): role accuracies and the student's
    ratios to teacher and baseline."""
    out: dict[str, float] = {}
    for role in ("teacher", "baseline", "student"):
        if role in roles:
            out[f"study/{role}_acc"] = roles[role].metrics["test/acc"]
            out[f"study/val_{role}_acc"] = roles[role].metrics["val/best_acc"]  # what a sweep may choose on
    if {"teacher", "student"} <= roles.keys():
        t, s = roles["teacher"].metrics, roles["student"].metrics
        out |= {
            "study/acc_ratio_teacher": s["test/acc"] / max(t["test/acc"], 1e-12),
            "study/val_acc_ratio_teacher": s["val/best_acc"] / max(t["val/best_acc"], 1e-12),
            "study/param_ratio": t["model/params"] / s["model/params"],
            "study/speedup": t["model/latency_ms"] / s["model/latency_ms"],
            "study/speedup_b256": t["model/latency_ms_b256"] / s["model/latency_ms_b256"],
            "study/memory_ratio": t["model/memory_mb"] / s["model/memory_mb"],
        }
    if {"baseline", "student"} <= roles.keys():
        b, s = roles["baseline"].metrics, roles["student"].metrics
        out["study/acc_ratio_baseline"] = s["test/acc"] / max(b["test/acc"], 1e-12)
        out["study/val_acc_ratio_baseline"] = s["val/best_acc"] / max(b["val/best_acc"], 1e-12)
    cohort = [roles[r].metrics["test/acc"] for r in roles if r == "student" or r.startswith("peer_")]
    if len(cohort) > 1:  # online: the student and its peers
        out |= {"study/peer_best_acc": max(cohort), "study/peer_mean_acc": sum(cohort) / len(cohort)}
    return out

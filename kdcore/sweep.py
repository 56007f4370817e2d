"""A sweep run end to end: its studies one after another in this process, then the paired student - baseline
difference of every point over its seeds, Holm-corrected across points.

The sweep is an MLflow run of its own (``kd.role = sweep``, not a study, so study lists leave it out) in the
studies' experiment; each study carries ``kd.sweep_id``, ``kd.sweep_point``, ``kd.sweep_key`` and
``mlflow.parentRunId`` (the stock MLflow UI nests it under the sweep). ``resume`` skips the points whose key
already has a FINISHED study in that sweep. Torch and the store are started once for all studies.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdcore import __version__
from kdcore.preflight import check_models
from kdcore.seed_stats import holm, paired_difference
from kdcore.study import FAILURE_TAG, Stopped, Study, StudyFailed
from kdcore.study_results import refresh_after
from kdcore.sweep_spec import Point, SweepSpec, count
from kdcore.tracker import STUDY_ROLE, Tracker

HOLM_ALPHA = 0.05  # family-wise error rate of the points' verdicts against their baselines
PRUNED = "PRUNED"  # an outcome a search stopped early; its study is KILLED with the reason
SWEEP_ROLE = "sweep"  # kd.role of a sweep's run
SPEC_FILE = "sweep.yaml"  # the sweep file's text, as run
SUMMARY_FILE = "summary.json"
STUDENT_ACC, BASELINE_ACC = "study/student_acc", "study/baseline_acc"  # test accuracies each study logs
VAL_STUDENT_ACC, VAL_BASELINE_ACC = "study/val_student_acc", "study/val_baseline_acc"  # best validation accuracies


class SweepRefused(ValueError):
    """A sweep that cannot start or resume as asked (one line)."""


@dataclass
class Outcome:
    """One study of the sweep: the point it ran, its study (None when none was created) and how it ended."""

    point: Point
    study_id: str | None
    status: str  # FINISHED | FAILED | KILLED | PRUNED (a search stopped it early)
    student_acc: float | None = None
    baseline_acc: float | None = None
    reason: str = ""
    skipped: bool = False  # finished in an earlier attempt of the sweep
    val_student_acc: float | None = None
    val_baseline_acc: float | None = None


@dataclass
class SweepResult:
    sweep_id: str
    status: str
    summary: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)


Execute = Callable[[str, dict[str, str]], list["Outcome"]]  # (sweep id, finished keys) -> every point's outcome


def run_sweep(spec: SweepSpec, points: list[Point], tracker: Tracker, text: str, overrides: list[str] | None = None,
              resume: str | None = None, echo: Callable[[str], None] = print, execute: Execute | None = None,
              started: Callable[[str], None] | None = None) -> SweepResult:
    """Run every point's study (skipping those already finished in ``resume``), then summarise.

    By default the studies run in this process one after another; ``execute`` runs them elsewhere (worker
    processes, see :mod:`kdcore.sweep_workers`) and returns their outcomes. ``started`` hears the sweep's run id
    as soon as it exists. A study that fails is reported and the next one runs; Ctrl-C (or SIGTERM) stops the
    study the way :class:`Study` does, ends the sweep KILLED and re-raises. The sweep ends FINISHED only when
    every study did (or a search pruned it), FAILED with the reason otherwise, and FAILED with the error when
    the sweep code itself breaks.
    """
    sweep_id = reopen(tracker, resume, text, overrides) if resume else start(tracker, spec, text, overrides)
    if started is not None:
        started(sweep_id)
    outcomes: list[Outcome] = []
    try:
        done = finished_studies(tracker, sweep_id)
        counter, total = itertools.count(1), len(points) if spec.search is None else count(spec)

        def skip(point: Point, study_id: str) -> Outcome:
            echo(f"[{next(counter)}/{total}] {point.id} {point.label}: already finished in study {study_id[:8]}, "
                 "skipped")
            return finished_outcome(tracker, point, study_id, skipped=True)

        def run(point: Point, through: Any = tracker) -> Outcome:
            where = f"[{next(counter)}/{total}] {point.id} {point.label}"
            echo(f"{where}: running")
            outcome = run_point(through, sweep_id, point)
            echo(f"{where}: {_result_text(outcome)}")
            return outcome

        best = None
        if execute is not None:
            outcomes = execute(sweep_id, done)
        elif spec.search is not None:
            from kdcore.sweep_search import search

            outcomes, best = search(spec, tracker, done, run, skip, echo)
        else:
            outcomes = [skip(point, done[point.key]) if point.key in done else run(point) for point in points]
        refresh_after(tracker, [o.study_id for o in outcomes if o.status == "FINISHED" and not o.skipped
                                and o.study_id is not None], in_order=execute is None)
        summary = summarise(sweep_id, spec, outcomes, best)
        tracker.log_bytes(sweep_id, SUMMARY_FILE, json.dumps(summary, indent=1).encode())
        failed = [o for o in outcomes if o.status not in ("FINISHED", PRUNED)]
        status = "FAILED" if failed else "FINISHED"
        if failed:
            tracker.set_tags(sweep_id, {FAILURE_TAG: f"{len(failed)} of {len(points)} studies failed: "
                                                      + ", ".join(o.point.key for o in failed)})
        tracker.end_run(sweep_id, status)
        tracker.flush(sweep_id)  # in the store before the caller reads it, from here or anywhere
        return SweepResult(sweep_id, status, summary, outcomes)
    except BaseException as err:
        # Ctrl-C arrives as itself between studies, or as the StudyFailed of the study it stopped
        interrupt = err if isinstance(err, KeyboardInterrupt) else err.__cause__
        reason = f"{type(err).__name__}: {err or 'cancelled'}"[:4000]
        tracker.set_tags(sweep_id, {FAILURE_TAG: reason})
        tracker.end_run(sweep_id, "KILLED" if isinstance(interrupt, KeyboardInterrupt) else "FAILED")
        tracker.flush(sweep_id)
        if isinstance(interrupt, KeyboardInterrupt):
            raise SweepInterrupted(sweep_id, interrupt) from err
        raise


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped (Ctrl-C, SIGTERM); its run is KILLED and ``--resume`` continues it."""

    def __init__(self, sweep_id: str, interrupt: KeyboardInterrupt) -> None:
        super().__init__(f"sweep {sweep_id} stopped ({type(interrupt).__name__})")
        self.sweep_id, self.interrupt = sweep_id, interrupt


def start(tracker: Tracker, spec: SweepSpec, text: str, overrides: list[str] | None) -> str:
    """Create the sweep's run with its tags, its params and the sweep file's text; return its id."""
    sweep_id = tracker.start_run(spec.name, {"kd.role": SWEEP_ROLE, "kd.sweep_name": spec.name,
                                             "kd.version": __version__},
                                 {"sweep.base": str(spec.base), "sweep.overrides": " ".join(overrides or [])})
    tracker.set_tags(sweep_id, {"kd.sweep_id": sweep_id})
    tracker.log_bytes(sweep_id, SPEC_FILE, text.encode())
    return sweep_id


def reopen(tracker: Tracker, ref: str, text: str, overrides: list[str] | None) -> str:
    """The sweep ``ref`` (its id or a unique start of it), set RUNNING again; refused when it was run from
    another sweep file or other overrides, since its point keys would then name other studies."""
    sweep_id = resolve_sweep_id(tracker, ref)
    record = tracker.get_run(sweep_id)
    if record.status in ("RUNNING", "SCHEDULED"):
        raise SweepRefused(f"--resume: sweep {sweep_id} is {record.status}; stop it first")
    same_file = tracker.read_bytes(sweep_id, SPEC_FILE).decode() == text
    if not same_file or record.params.get("sweep.overrides", "") != " ".join(overrides or []):
        raise SweepRefused(f"--resume: sweep {sweep_id} was run from another sweep file or other KEY=VALUE "
                           "overrides; resume it with the same ones, or start a new sweep")
    tracker.set_status(sweep_id, "RUNNING")
    tracker.delete_tag(sweep_id, FAILURE_TAG)
    return sweep_id


def resolve_sweep_id(tracker: Tracker, ref: str) -> str:
    """A sweep's id from its full id or a unique start of it (the 8 characters other commands accept)."""
    ref = ref.strip()
    found = [r.run_id for r in tracker.find_runs({"kd.role": SWEEP_ROLE}) if ref and r.run_id.startswith(ref)]
    if ref in found:
        return ref
    if len(found) == 1:
        return found[0]
    if not found:
        raise SweepRefused(f"--resume: no sweep {ref!r} in {tracker.uri}")
    raise SweepRefused(f"--resume: {ref!r} starts {len(found)} sweep ids; give more of the id")


def finished_studies(tracker: Tracker, sweep_id: str) -> dict[str, str]:
    """Point key -> id of a FINISHED study of the sweep (the newest when a key has several)."""
    runs = tracker.find_runs({"kd.sweep_id": sweep_id, "kd.role": STUDY_ROLE}, status="FINISHED")
    found: dict[str, str] = {}
    for run in runs:  # newest first
        found.setdefault(run.tags.get("kd.sweep_key", ""), run.run_id)
    return found


def run_point(tracker: Tracker, sweep_id: str, point: Point) -> Outcome:
    """Run one point's study, tagged into the sweep before it trains; any failure becomes a FAILED outcome."""
    study = Study(point.config, tracker, progress=False, refresh=False)  # the sweep refreshes siblings once
    try:
        check_models(point.config)  # as Study.run does before the study exists
        study_id = study.start()
        tracker.set_tags(study_id, {"kd.sweep_id": sweep_id, "kd.sweep_point": point.id, "kd.sweep_key": point.key,
                                    "kd.sweep_values": json.dumps(point.values, sort_keys=True),
                                    "mlflow.parentRunId": sweep_id})
        study.run()
    except StudyFailed as err:
        if isinstance(err.__cause__, KeyboardInterrupt):
            raise
        if isinstance(err.__cause__, Stopped):
            return Outcome(point, err.study_id, PRUNED, reason=err.reason)
        return Outcome(point, err.study_id, "FAILED", reason=err.reason)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"[:4000]
        if study.study_id is not None and tracker.get_run(study.study_id).status == "RUNNING":
            tracker.set_tags(study.study_id, {FAILURE_TAG: reason})  # left open by the failure: close it
            tracker.end_run(study.study_id, "FAILED")
        return Outcome(point, study.study_id, "FAILED", reason=reason)
    return finished_outcome(tracker, point, str(study.study_id))


def finished_outcome(tracker: Tracker, point: Point, study_id: str, skipped: bool = False) -> Outcome:
    """The outcome of a FINISHED study of the sweep, with the accuracies the summary reads."""
    metrics = tracker.get_run(study_id).metrics
    return Outcome(point, study_id, "FINISHED", metrics.get(STUDENT_ACC), metrics.get(BASELINE_ACC),
                   skipped=skipped, val_student_acc=metrics.get(VAL_STUDENT_ACC),
                   val_baseline_acc=metrics.get(VAL_BASELINE_ACC))


def _result_text(outcome: Outcome) -> str:
    if outcome.status != "FINISHED":
        return f"{outcome.status} ({outcome.reason})"
    return f"student {_pct(outcome.student_acc)}, baseline {_pct(outcome.baseline_acc)}"


def summarise(sweep_id: str, spec: SweepSpec, outcomes: list[Outcome], best: str | None = None) -> dict[str, Any]:
    """Per point, over its seeds: student and baseline test accuracies and their paired difference, with
    p-values Holm-corrected across the points that have one; the same difference on validation, which picks
    the best point unless a search chose it (``best``: a validation choice either way, so its test number is
    reported once and never searched on); plus every failed study with its reason and every pruned one."""
    rows: list[dict[str, Any]] = []
    for point_id in dict.fromkeys(o.point.id for o in outcomes):
        mine = [o for o in outcomes if o.point.id == point_id]
        usable = [o for o in mine if o.status == "FINISHED" and o.student_acc is not None
                  and o.baseline_acc is not None]
        row: dict[str, Any] = {"point": point_id, "values": mine[0].point.values,
                               "label": mine[0].point.label.rpartition(" · seed ")[0],
                               "seeds": [o.point.seed for o in usable], "study_ids": [o.study_id for o in usable],
                               "student_acc": [o.student_acc for o in usable],
                               "baseline_acc": [o.baseline_acc for o in usable],
                               "difference": "no finished study", "p_value": None, "p_holm": None,
                               "val_mean": None}
        if usable:
            diff = paired_difference(row["student_acc"], row["baseline_acc"])
            row |= {"difference": diff.describe(), "mean": diff.mean, "low": diff.low, "high": diff.high,
                    "verdict": diff.verdict, "p_value": diff.p_value, "seeds_needed": diff.seeds_needed}
            val = [(o.val_student_acc, o.val_baseline_acc) for o in usable]
            if all(s is not None and b is not None for s, b in val):
                row |= {"val_student_acc": [s for s, _ in val], "val_baseline_acc": [b for _, b in val],
                        "val_mean": sum(s - b for s, b in val) / len(val)}  # type: ignore[operator]
        rows.append(row)
    tested = [row for row in rows if row["p_value"] is not None and math.isfinite(row["p_value"])]
    if tested:
        for row, adjusted in zip(tested, holm([row["p_value"] for row in tested]).adjusted, strict=True):
            row["p_holm"] = adjusted  # a point "differs from its baseline" only when this is below 0.05
            row["holm_verdict"] = row["verdict"] if adjusted < HOLM_ALPHA and row["verdict"] in ("helps", "hurts") \
                else "cannot tell after Holm's correction"
    chosen = [row for row in rows if row["val_mean"] is not None]
    rule = "the highest mean validation gain (student - baseline best validation accuracy)"
    if spec.search is not None:
        rule = f"the search's best trial on {spec.search.objective} ({spec.search.direction}d over its seeds)"
    elif chosen:
        best = max(chosen, key=lambda row: row["val_mean"])["point"]
    failed = [{"key": o.point.key, "study_id": o.study_id, "reason": o.reason}
              for o in outcomes if o.status not in ("FINISHED", PRUNED)]
    pruned = [{"key": o.point.key, "study_id": o.study_id, "reason": o.reason} for o in outcomes if o.status == PRUNED]
    return {"sweep_id": sweep_id, "name": spec.name, "studies": len(outcomes),
            "finished": len(outcomes) - len(failed) - len(pruned),
            "metric": f"{STUDENT_ACC} - {BASELINE_ACC} (test accuracy)",
            "axes": [field for fields in spec.axes().values() for field in fields], "seeds": list(spec.seeds),
            "correction": f"Holm-corrected across {len(tested)} points", "best": best,
            "best_rule": rule, "points": rows, "failed": failed, "pruned": pruned}


def summary_text(summary: dict[str, Any]) -> str:
    """The summary for the terminal: one line per point, then the failed studies."""
    lines = [f"sweep {summary['sweep_id']}  {summary['name']}: {summary['finished']} of {summary['studies']} "
             "studies finished",
             f"student - baseline test accuracy per point, paired by seed; p-values {summary['correction']}"]
    width = max(len(row["label"]) for row in summary["points"]) if summary["points"] else 0
    for row in summary["points"]:
        p = "" if row["p_holm"] is None else \
            f"  p {row['p_value']:.3g}, Holm {row['p_holm']:.3g}: {row['holm_verdict']}"
        lines.append(f"  {row['point']} {row['label']:<{width}}  {row['difference']}{p}")
    best = next((row for row in summary["points"] if row["point"] == summary.get("best")), None)
    if best is not None:
        lines.append(f"best on validation: {best['point']} {best['label']} (validation gain "
                     f"{100 * best['val_mean']:+.1f} points); its test difference, reported once: {best['difference']}")
    for failure in summary["failed"]:
        study = f"study {failure['study_id'][:8]}" if failure["study_id"] else "no study"
        lines.append(f"  failed {failure['key']} ({study}): {failure['reason']}")
    return "\n".join(lines)


def summary_markdown(summary: dict[str, Any], source: str) -> str:
    """The summary as a Markdown section for a results file: each point's test accuracies over seeds, its paired
    gain over the baseline with the 95% interval, the verdict before and after Holm's correction, and the point
    chosen on validation. ``source`` is the sweep file, for the reader who wants to run it again."""
    from kdcore.seed_stats import mean_interval

    def acc(values: list[float]) -> str:
        estimate = mean_interval(values)
        if estimate.half_width is None:
            return f"{100 * estimate.mean:.1f}"
        return f"{100 * estimate.mean:.1f} [{100 * (estimate.mean - estimate.half_width):.1f}, " \
               f"{100 * (estimate.mean + estimate.half_width):.1f}]"

    columns = ["point", "student test acc % [95% CI]", "baseline test acc % [95% CI]", "gain, pts [95% CI]", "verdict",
               "after Holm", "validation gain, pts"]
    lines = [f"### Sweep: {summary['name']}", "",
             f"`kdx sweep {source}`: {summary['finished']} of {summary['studies']} studies finished, seeds "
             f"{', '.join(str(s) for s in summary['seeds'])}. The gain is the student's test accuracy minus its "
             f"baseline's, paired by seed; p-values are {summary['correction']}. The best point is chosen on "
             f"validation ({summary['best_rule']}); its test number is reported once, not searched on.", "",
             "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    ranked = sorted(summary["points"], key=lambda row: -(row.get("mean") or -1e9))
    for row in ranked:
        if not row["student_acc"]:
            lines.append(f"| {row['label']} | – | – | – | {row['difference']} | – | – |")
            continue
        gain = f"{100 * row['mean']:+.1f}" + ("" if row.get("low") is None
                                              else f" [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]")
        best = " **(best on validation)**" if row["point"] == summary.get("best") else ""
        val = "–" if row.get("val_mean") is None else f"{100 * row['val_mean']:+.1f}"
        lines.append(f"| {row['label']}{best} | {acc(row['student_acc'])} | {acc(row['baseline_acc'])} | {gain} | "
                     f"{row['verdict']} | {row.get('holm_verdict') or '–'} | {val} |")
    for failure in summary["failed"]:
        lines.append(f"\nFailed: {failure['key']}: {failure['reason']}")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"

"""An Optuna search as a sweep: each trial is one point, run once per seed, scored on validation numbers only.

Optuna's TPE sampler (seeded by ``search.seed``) proposes each trial's values from the axes; the trial's
score is the objective averaged over its seeds. With ``prune``, a median pruner compares the student's
validation accuracy epoch by epoch with the trials before it and stops a trial that lags: its study ends
KILLED with the reason, and the next trial starts. The test split is never read by the search; the sweep's
summary reports it once per point.

A resumed search tells Optuna the trials its sweep already finished (their values are the studies'
``kd.sweep_values`` tag) and re-runs only the missing seeds of an unfinished one, with the same values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kdcore.study import Stopped
from kdcore.sweep_spec import OBJECTIVES, Axis, Point, SweepError, SweepSpec, configure
from kdcore.tracker import Tracker

CURVE = "val/acc"  # the student's per-epoch number a trial is pruned on
PRUNER_STARTUP_TRIALS = 2  # trials that always run to the end, so the pruner has something to compare with


class Pruned(Stopped):
    """The search stopped a trial whose validation curve lagged the trials before it."""


def distribution(axis: Axis) -> Any:
    """The Optuna distribution of one axis: categorical choices, or an integer or float range (log or not)."""
    import optuna

    if axis.choices is not None:
        return optuna.distributions.CategoricalDistribution(axis.choices)
    if axis.integer:
        return optuna.distributions.IntDistribution(int(axis.low), int(axis.high), log=axis.log)  # type: ignore[arg-type]
    return optuna.distributions.FloatDistribution(float(axis.low), float(axis.high), log=axis.log)  # type: ignore[arg-type]


def objective_value(name: str, metrics: dict[str, float]) -> float | None:
    """One study's value of the objective ``name`` (see :data:`OBJECTIVES`), None when it lacks a number."""
    if name == "val/gain":
        student, baseline = metrics.get("study/val_student_acc"), metrics.get("study/val_baseline_acc")
        return None if student is None or baseline is None else student - baseline
    return metrics.get(OBJECTIVES[name][0])


class ReportingTracker:
    """A tracker that passes everything on and also hands the student's per-epoch validation accuracy to
    ``report(value, epoch)``, which raises :class:`Pruned` to stop the study."""

    def __init__(self, tracker: Tracker, report: Callable[[float, int], None]) -> None:
        self._tracker, self._report, self._student = tracker, report, ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)

    def start_run(self, name: str, tags: dict[str, str], params: dict[str, str], parent_id: str | None = None) -> str:
        run_id = self._tracker.start_run(name, tags, params, parent_id)
        if tags.get("kd.role") == "student":
            self._student = run_id
        return run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        self._tracker.log_metrics(run_id, metrics, step)
        if run_id == self._student and CURVE in metrics:
            self._report(metrics[CURVE], step)


RunPoint = Callable[[Point, Any], Any]  # (point, tracker to run it with) -> Outcome


def search(spec: SweepSpec, tracker: Tracker, done: dict[str, str], run: RunPoint, skip: Callable[[Point, str], Any],
           echo: Callable[[str], None]) -> tuple[list[Any], str | None]:
    """Run ``search.trials`` trials; return every seed's outcome and the best trial's point id (None if no
    trial finished). ``done`` maps a finished study's point key to its id (a resumed sweep); ``run`` runs one
    point's study and ``skip`` records one finished before, as :func:`kdcore.sweep.run_sweep` does."""
    import optuna

    assert spec.search is not None
    given = spec.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=1)
              if given.prune else optuna.pruners.NopPruner())
    optimiser = optuna.create_study(direction=given.direction, sampler=optuna.samplers.TPESampler(seed=given.seed),
                                    pruner=pruner)
    spaces = {field: distribution(axis) for field, axis in given.axes.items()}
    width = max(2, len(str(given.trials - 1)))
    outcomes: list[Any] = []
    scores: dict[str, float] = {}
    for i in range(given.trials):
        point_id = f"p{i:0{width}d}"
        earlier = {seed: done[f"{point_id}-s{seed}"] for seed in spec.seeds if f"{point_id}-s{seed}" in done}
        if earlier:  # a resumed trial keeps its values
            values = json.loads(tracker.get_run(next(iter(earlier.values()))).tags["kd.sweep_values"])
            optimiser.enqueue_trial(values)
        trial = optimiser.ask(spaces)
        values = {field: trial.params[field] for field in given.axes}
        mine, epochs, pruned = [], 0, False
        for k, seed in enumerate(spec.seeds):
            try:
                point = Point(point_id, dict(values), seed, configure(spec, values, seed))
            except SweepError as err:  # a combination of values the config refuses: the trial fails, not the sweep
                echo(f"trial {i + 1}/{given.trials} {point_id}: {err}")
                break
            if seed in earlier:
                mine.append(skip(point, earlier[seed]))
                continue
            epochs = point.config.train.epochs

            def report(value: float, epoch: int, k: int = k, epochs: int = epochs, trial: Any = trial) -> None:
                trial.report(value, k * (epochs + 1) + epoch)
                if trial.should_prune():
                    raise Pruned(f"pruned by the search at epoch {epoch}: {CURVE} {value:.4f} lags earlier trials")

            outcome = run(point, ReportingTracker(tracker, report))
            mine.append(outcome)
            if outcome.status == "PRUNED":
                pruned = True
                break
        outcomes += mine
        values_seen = [objective_value(given.objective, tracker.get_run(o.study_id).metrics)
                       for o in mine if o.status == "FINISHED"]
        finished = [v for v in values_seen if v is not None]
        if pruned:
            optimiser.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif len(finished) == len(spec.seeds):
            scores[point_id] = sum(finished) / len(finished)
            optimiser.tell(trial, scores[point_id])
        else:
            optimiser.tell(trial, state=optuna.trial.TrialState.FAIL)
        state = "pruned" if pruned else (f"{given.objective} {scores[point_id]:.4f}" if point_id in scores
                                         else "failed")
        echo(f"trial {i + 1}/{given.trials} {point_id}: {state}")
    if not scores:
        return outcomes, None
    pick = max if given.direction == "maximize" else min
    return outcomes, pick(scores, key=scores.__getitem__)

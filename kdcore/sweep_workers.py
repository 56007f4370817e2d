"""A sweep's studies shared among worker processes, each a job of the launcher the dashboard uses.

``kdx sweep FILE --workers N`` creates the sweep's run here, then launches N jobs; each is
``kdx sweep FILE --join SWEEP_ID --share k/N`` and runs its share of the points one after another in one
process (Python and torch start once per worker, not per study), holding one of the launcher's slots.
Points are shared by seed, so a seed's teacher and baseline are trained once, by one worker, and reused by
its other points. This process waits, prints each study as it ends, and summarises from the store; Ctrl-C
cancels every worker (their studies end KILLED) and ``--resume`` continues the sweep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kdcore import launcher
from kdcore.study import FAILURE_TAG, StudyFailed
from kdcore.sweep import Outcome, finished_outcome, finished_studies, run_point
from kdcore.sweep_spec import Point
from kdcore.tracker import STUDY_ROLE, RunRecord, Tracker

POLL_SECONDS = 1.0


def share(points: list[Point], k: int, n: int) -> list[Point]:
    """Worker ``k`` of ``n``'s points: those of every n-th seed (a seed's points stay together, so its teacher
    and baseline train once), or every n-th point when there are fewer seeds than workers."""
    seeds = list(dict.fromkeys(point.seed for point in points))
    if len(seeds) >= n:
        return [point for point in points if seeds.index(point.seed) % n == k]
    return [point for i, point in enumerate(points) if i % n == k]


def run_share(tracker: Tracker, sweep_id: str, points: list[Point],
              echo: Callable[[str], None] = print) -> list[Outcome]:
    """One worker's studies, in order; those already finished in the sweep are skipped. Ctrl-C (or SIGTERM)
    stops the study that trains (it ends KILLED) and goes on up as the KeyboardInterrupt it was."""
    done = finished_studies(tracker, sweep_id)
    outcomes = []
    for point in points:
        if point.key in done:
            echo(f"{point.id} {point.label}: already finished in study {done[point.key][:8]}, skipped")
            continue
        echo(f"{point.id} {point.label}: running")
        try:
            outcome = run_point(tracker, sweep_id, point)
        except StudyFailed as err:  # run_point lets only an interrupted study through
            raise err.__cause__ from err  # type: ignore[misc]
        echo(f"{point.id} {point.label}: {outcome.status} {outcome.reason}".rstrip())
        outcomes.append(outcome)
    return outcomes


def executor(sweep_file: Path, args: list[str], points: list[Point], tracker: Tracker, workers: int,
             name: str, echo: Callable[[str], None] = print) -> Callable[[str, dict[str, str]], list[Outcome]]:
    """The ``execute`` of :func:`kdcore.sweep.run_sweep` that runs the points in ``workers`` launcher jobs."""

    def execute(sweep_id: str, done: dict[str, str]) -> list[Outcome]:
        jobs = [launcher.launch_sweep(sweep_file, [*args, "--join", sweep_id, "--share", f"{k}/{workers}"],
                                      name=f"{name} · worker {k + 1}/{workers}", tracking_uri=tracker.uri,
                                      slots=workers)
                for k in range(workers)]
        echo(f"{workers} workers: jobs {', '.join(job.job_id for job in jobs)} (logs in {jobs[0].dir.parent})")
        try:
            _wait(jobs, tracker, sweep_id, set(done), echo)
        except KeyboardInterrupt:
            for job in jobs:
                launcher.cancel(job.job_id, job.dir.parent)
            for job in jobs:
                launcher.wait(job.job_id, 120, job.dir.parent)
            raise
        return gather(tracker, sweep_id, points, jobs)

    return execute


def _wait(jobs: list[launcher.Job], tracker: Tracker, sweep_id: str, seen: set[str],
          echo: Callable[[str], None]) -> None:
    """Poll until every worker has ended, printing each study of the sweep as it finishes."""
    while True:
        states = [launcher.get_job(job.job_id, job.dir.parent) for job in jobs]
        for key, study_id in finished_studies(tracker, sweep_id).items():
            if key not in seen:
                seen.add(key)
                echo(f"{key}: finished (study {study_id[:8]})")
        if all(state.status in launcher.TERMINAL and not launcher.is_locked(state.dir / "alive.lock")
               for state in states):
            return
        time.sleep(POLL_SECONDS)


def gather(tracker: Tracker, sweep_id: str, points: list[Point], jobs: list[launcher.Job]) -> list[Outcome]:
    """Every point's outcome from the store: its newest study in the sweep, or a failure naming why the worker
    that owned it ended before running it."""
    studies: dict[str, RunRecord] = {}
    for run in tracker.find_runs({"kd.sweep_id": sweep_id, "kd.role": STUDY_ROLE}):  # newest first
        studies.setdefault(run.tags.get("kd.sweep_key", ""), run)
    states = [launcher.get_job(job.job_id, job.dir.parent) for job in jobs]
    ended = "; ".join(f"{job.name}: {job.message or job.status}" for job in states if job.status != "finished")
    outcomes = []
    for point in points:
        run = studies.get(point.key)
        if run is None:
            outcomes.append(Outcome(point, None, "FAILED", reason=f"never ran ({ended or 'no worker took it'})"))
        elif run.status == "FINISHED":
            outcomes.append(finished_outcome(tracker, point, run.run_id))
        else:
            outcomes.append(Outcome(point, run.run_id, run.status, reason=run.tags.get(FAILURE_TAG, run.status)))
    return outcomes

"""A sweep run by launcher jobs: shared among worker processes by seed, launched from the dashboard's launcher as
one job, and cancelled there and resumed. Each job process spends seconds importing torch, so the file starts few."""

from __future__ import annotations

import json
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from kdcore import launcher
from kdcore.cli import main
from kdcore.sweep import SUMMARY_FILE
from kdcore.sweep_spec import load_sweep
from kdcore.sweep_workers import share
from tests.test_sweep import GRID, studies_of, sweep_runs, write_sweep

TIMEOUT = 240.0  # seconds; a loaded machine starts processes slowly


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("KDX_MAX_CONCURRENT", "1")
    return tmp_path / "jobs"


def test_shares_keep_a_seeds_points_together_and_cover_every_point(tmp_path: Path) -> None:
    from kdcore.sweep_spec import expand

    points = expand(load_sweep(write_sweep(tmp_path, GRID.replace("[0, 1]", "[0, 1, 2]"))))
    shares = [share(points, k, 2) for k in range(2)]
    assert sorted(p.key for s in shares for p in s) == sorted(p.key for p in points)
    assert {p.seed for p in shares[0]} == {0, 2} and {p.seed for p in shares[1]} == {1}
    few = share(points, 1, 4)  # more workers than seeds: every fourth point
    assert [p.key for p in few] == [points[1].key, points[5].key]


def test_two_workers_run_a_sweep_and_each_seed_trains_its_teacher_and_baseline_once(
        tmp_path: Path, sqlite_uri: str, jobs: Path) -> None:
    path = write_sweep(tmp_path)
    out = StringIO()
    with redirect_stdout(out):
        assert main(["sweep", str(path), "--workers", "2", "--tracking-uri", sqlite_uri]) == 0
    (run,) = sweep_runs(sqlite_uri)
    assert run.info.status == "FINISHED"
    summary = json.loads(Path(MlflowClient(sqlite_uri).download_artifacts(run.info.run_id, SUMMARY_FILE)).read_text())
    assert summary["finished"] == 4 and [row["seeds"] for row in summary["points"]] == [[0, 1], [0, 1]]
    done = launcher.list_jobs(jobs)
    assert sorted(job.name for job in done) == ["tiny · worker 1/2", "tiny · worker 2/2"]
    assert all(job.status == "finished" and job.kind == "sweep" and job.study_id == run.info.run_id for job in done)
    client = MlflowClient(sqlite_uri)
    roles = [r for role in ("teacher", "baseline")
             for r in client.search_runs([run.info.experiment_id], f"tags.`kd.role` = '{role}'")]
    trained = sorted((r.data.tags["kd.role"], r.data.params["train.seed"]) for r in roles
                     if "kd.reused_from" not in r.data.tags)
    assert trained == [("baseline", "0"), ("baseline", "1"), ("teacher", "0"), ("teacher", "1")]
    assert len(studies_of(sqlite_uri, run.info.run_id)) == 4


def test_a_sweep_job_from_the_launcher_can_be_cancelled_and_resumed(tmp_path: Path, sqlite_uri: str,
                                                                    jobs: Path) -> None:
    path = write_sweep(tmp_path, GRID.replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    job = launcher.launch_sweep(path, [], name="tiny", tracking_uri=sqlite_uri)
    assert job.kind == "sweep" and job.status == "queued"
    client = MlflowClient(sqlite_uri)
    deadline = time.monotonic() + TIMEOUT
    while not (sweep_runs(sqlite_uri) and studies_of(sqlite_uri, sweep_runs(sqlite_uri)[0].info.run_id)):
        state = launcher.get_job(job.job_id, jobs)
        assert time.monotonic() < deadline and state.status in ("queued", "running"), job.log.read_text()
        time.sleep(0.5)
    launcher.cancel(job.job_id, jobs)
    ended = launcher.wait(job.job_id, TIMEOUT, jobs)
    (sweep,) = sweep_runs(sqlite_uri)
    assert ended.status == "killed" and ended.study_id == sweep.info.run_id, ended
    assert client.get_run(sweep.info.run_id).info.status == "KILLED"
    finished = [s for s in studies_of(sqlite_uri, sweep.info.run_id) if s.info.status == "FINISHED"]
    with redirect_stdout(StringIO()) as out:
        assert main(["sweep", str(path), "--resume", sweep.info.run_id[:8], "--tracking-uri", sqlite_uri]) == 0
    assert out.getvalue().count("skipped") == len(finished)
    assert client.get_run(sweep.info.run_id).info.status == "FINISHED"
    keys = {s.data.tags["kd.sweep_key"] for s in studies_of(sqlite_uri, sweep.info.run_id)
            if s.info.status == "FINISHED"}
    assert len(keys) == 6


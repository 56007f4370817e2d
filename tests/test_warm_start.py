"""The warm starter: launched studies fork from a process that has imported everything, and behave as jobs in
every way the launcher relies on (their own log, session and alive lock, cancel, a death noticed)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdcore import launcher, warm_start
from kdcore.tracking import MlflowTracker
from tests.helpers import tiny_config

STARTUP_S = 180.0  # a loaded 2-core machine imports torch, MLflow and scikit-learn slowly
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def warm_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One jobs folder with its warm starter up, and a store, for the module."""
    folder = tmp_path_factory.mktemp("warm")
    root, uri = folder / "jobs", f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KDX_WARM_START", "1")
        mp.setenv("KDX_JOBS_DIR", str(root))
        mp.setenv("KDX_MAX_CONCURRENT", "1")
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(folder)
        root.mkdir()
        warm_start.ensure(root)
        deadline = time.monotonic() + STARTUP_S
        while not warm_start.ready(root):
            assert time.monotonic() < deadline, (root / warm_start.LOG).read_text()
            time.sleep(0.2)
        try:
            yield root, uri
        finally:
            for job in launcher.list_jobs(root):
                launcher.cancel(job.job_id, root)
            warm_start.stop(root)
    assert not warm_start.ready(root)


def _until(job: launcher.Job, done: object) -> launcher.Job:
    deadline = time.monotonic() + TIMEOUT
    while not done(job := launcher.get_job(job.job_id)):  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting; job is {job}: {job.log.read_text()[-2000:]}"
        time.sleep(0.1)
    return job


def test_a_launched_study_is_forked_by_the_starter_and_finishes(warm_root: tuple[Path, str]) -> None:
    root, uri = warm_root
    job = launcher.launch(tiny_config("train.epochs=1"), tracking_uri=uri)
    assert job.pid not in launcher._children  # not a process of ours: the starter's child
    job = launcher.wait(job.job_id, TIMEOUT)
    assert job.status == "finished", job.log.read_text()[-2000:]
    assert "logged to" in job.log.read_text()  # the child's output went to the job's own log
    assert MlflowTracker(uri).get_run(str(job.study_id)).status == "FINISHED"
    assert warm_start.ready(root)  # the starter serves the next job too


def test_cancel_reaches_a_forked_study_and_a_killed_one_is_noticed(warm_root: tuple[Path, str]) -> None:
    root, uri = warm_root
    long = launcher.launch(tiny_config("train.epochs=2000"), tracking_uri=uri)
    long = _until(long, lambda j: j.status == "running")
    assert os.getpgid(long.pid) == long.pid  # a session of its own: cancel signals it alone
    launcher.cancel(long.job_id)
    long = launcher.wait(long.job_id, TIMEOUT)
    assert long.status == "killed" and MlflowTracker(uri).get_run(str(long.study_id)).status == "KILLED"

    doomed = launcher.launch(tiny_config("train.epochs=2000"), tracking_uri=uri)
    doomed = _until(doomed, lambda j: j.status == "running")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed = _until(doomed, lambda j: j.status == "failed")  # its alive lock went with it
    assert warm_start.ready(root)


def test_turned_off_it_starts_nothing_and_forks_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDX_WARM_START", "0")
    warm_start.ensure(tmp_path)
    assert warm_start.start(tmp_path, ["--help"], {}, 1, 2) is None
    time.sleep(0.5)
    assert not warm_start.ready(tmp_path) and not (tmp_path / warm_start.LOG).exists()

"""The launcher with real ``kdx run`` processes: run, queue, cancel, and a process that dies.

Each job process spends 5-10 s importing torch and mlflow, so the file starts only five.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from kdcore.launcher import Job, available_devices, cancel, get_job, is_locked, launch, list_jobs, wait
from kdcore.tracking import list_studies
from tests.helpers import tiny_config

TIMEOUT = 120.0  # seconds; generous, a loaded machine starts processes slowly


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite store for the module: creating one costs seconds, studies are told apart by id."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture
def root(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh jobs root, reached through $KDX_JOBS_DIR as the dashboard would."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDX_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("KDX_MAX_CONCURRENT", "1")
    yield tmp_path / "jobs"
    for job in list_jobs():  # a failed test must not leave a study training in the background
        cancel(job.job_id)


def study_row(uri: str, study_id: str | None) -> pd.Series:
    frame = list_studies(uri)
    return frame.set_index("study_id").loc[study_id]


def wait_until(job: Job, ok: Callable[[Job], bool]) -> Job:
    deadline = time.monotonic() + TIMEOUT
    while not ok(job := get_job(job.job_id)):
        assert time.monotonic() < deadline, f"gave up waiting; job is {job}"
        time.sleep(0.2)
    return job


def wait_for_status(uri: str, study_id: str | None, status: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (found := study_row(uri, study_id).status) != status:
        assert time.monotonic() < deadline, f"study {study_id} is {found}, not {status}"
        time.sleep(0.2)


def test_jobs_queue_for_one_slot_cancel_to_killed_and_hand_the_slot_on(store: str, root: Path) -> None:
    # The first job is started with SIGINT ignored, as from a background shell: cancel must still work.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        first = launch(tiny_config("train.epochs=2000"))
    finally:
        signal.signal(signal.SIGINT, previous)
    second, third = launch(tiny_config()), launch(tiny_config())
    assert first.dir.parent == root and (first.dir / "config.yaml").is_file() and first.status == "queued"
    assert [j.job_id for j in list_jobs()] == [third.job_id, second.job_id, first.job_id]  # newest first

    # One CPU slot: the first job trains, the second waits with its study SCHEDULED.
    first = wait_until(first, lambda j: j.status == "running")
    second = wait_until(second, lambda j: j.study_id is not None)
    assert first.slot == "cpu:0" and second.status == "queued" and second.slot is None
    wait_for_status(store, first.study_id, "RUNNING")  # Study.run reopens it just after the job turns running
    assert study_row(store, second.study_id).status == "SCHEDULED"

    cancel(second.job_id)
    second = wait(second.job_id, TIMEOUT)
    row = study_row(store, second.study_id)
    assert (second.status, row.status, row.failure_reason) == ("killed", "KILLED", "cancelled while queued")
    assert get_job(first.job_id).status == "running"  # the queued one's cancel left the other alone

    cancel(first.job_id)
    first = wait(first.job_id, TIMEOUT)
    row = study_row(store, first.study_id)
    assert (first.status, row.status) == ("killed", "KILLED"), first.log.read_text()
    assert row.failure_reason.startswith("KeyboardInterrupt") and first.message == row.failure_reason
    assert cancel(first.job_id).status == "killed"  # an ended job: nothing to do

    # The freed slot goes to the third job, which trains to the end.
    third = wait(third.job_id, TIMEOUT)
    assert third.status == "finished", third.log.read_text()
    assert third.slot is None and third.name.startswith("digits mlp-w32-d1->mlp-w8-d1")
    assert study_row(store, third.study_id).status == "FINISHED"
    assert not is_locked(root / "slots" / "cpu:0.lock")


def test_job_whose_process_died_is_reported_failed(store: str, root: Path) -> None:
    job = launch(tiny_config())
    os.killpg(job.pid, signal.SIGKILL)  # a crash: nothing in the process gets to write its status
    job = wait(job.job_id, TIMEOUT)
    assert job.status == "failed" and job.message
    assert json.loads((job.dir / "job.json").read_text())["status"] == "failed"  # stored, not only reported


def test_cancel_right_after_launch_kills_before_any_study(store: str, root: Path) -> None:
    job = cancel(launch(tiny_config()).job_id)  # its process is still importing
    assert (job.status, job.message) == ("killed", "cancelled while queued")
    job = wait(job.job_id, TIMEOUT)
    assert (job.status, job.study_id) == ("killed", None)


def test_cancel_unknown_job_is_one_line_error(root: Path) -> None:
    for job_id in ("no-such-job", "../jobs"):
        with pytest.raises(ValueError, match="does not exist") as err:
            cancel(job_id)
        assert "\n" not in str(err.value)


def test_available_devices_include_cpu() -> None:
    devices = available_devices()
    assert devices[-1]["value"] == "cpu" and devices[-1]["label"].startswith("cpu")
    assert all(set(d) == {"value", "label"} for d in devices)

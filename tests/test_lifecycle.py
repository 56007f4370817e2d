"""A study's life across signals, crashes and second processes: it always ends in a true state.

SIGTERM ends it KILLED (exit 143); ``kill -9`` leaves it listed FAILED and resumable; one process at a
time may run it; a resumed study has exactly one point per epoch in every curve; a checkpoint is only
adopted by the study and role that wrote it, and none outlives a finished study.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdcore import ownership
from kdcore.engine import CheckpointMismatch, build_optimizer
from kdcore.ownership import GONE_REASON, StudyBusy, StudyLock, orphaned, owner_tags, prune_checkpoints
from kdcore.study import FAILURE_TAG, Study, StudyFailed
from kdcore.tracker import STUDY_ROLE, MemoryTracker
from kdcore.tracking import MlflowTracker, list_studies, metric_history
from tests.helpers import TINY, tiny_config

KDX = shutil.which("kdx", path=str(Path(sys.executable).parent))
SLOW = [*TINY, "train.epochs=300", "teacher.width=256", "teacher.depth=3"]  # seconds per role, even when idle


def write_config(folder: Path, overrides: list[str]) -> Path:
    path = folder / "study.yaml"
    tiny_config(*overrides).save(path)
    return path


def kdx(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([KDX, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def failed_study(tracker, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> str:
    """A study whose student crashes in its first epoch (teacher and baseline finished); its id."""
    from kdcore.methods.kd import KD

    def crash(self, batch):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(KD, "step", crash)
    with pytest.raises(StudyFailed) as info:
        Study(tiny_config(*overrides), tracker, progress=False).run()
    monkeypatch.undo()
    return info.value.study_id


def wait_for(condition, timeout: float = 180, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def the_study(uri: str) -> str | None:
    frame = list_studies(uri)
    return frame["study_id"].iloc[0] if len(frame) else None


def runs_by_role(tracker: MlflowTracker, study_id: str) -> dict[str, object]:
    return {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": study_id})}


def checkpoints(study_id: str) -> Path:
    return Path(os.environ["KDX_CACHE_DIR"]) / "checkpoints" / study_id


def assert_one_point_per_epoch(uri: str, study_id: str) -> None:
    """Every per-epoch metric of every role has exactly the steps 0 .. epochs-1, each once."""
    tracker = MlflowTracker(uri)
    for role, run in runs_by_role(tracker, study_id).items():
        if role == STUDY_ROLE:
            continue
        epochs = int(run.params["train.teacher_epochs"] or run.params["train.epochs"]) if role == "teacher" \
            else int(run.params["train.epochs"])
        history = metric_history([run.run_id], ["val/acc", "train/loss", "train/lr"], uri)
        for key, rows in history.groupby("key"):
            assert list(rows["step"]) == list(range(epochs)), f"{role} {key}: steps {list(rows['step'])}"


# --- signals and crashes, with the real CLI ----------------------------------------------------------
def test_sigterm_ends_the_study_killed_with_exit_143(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = kdx("run", str(write_config(tmp_path, SLOW)), "--tracking-uri", uri, "--no-progress", cwd=tmp_path)
    tracker = None
    try:
        study_id = wait_for(lambda: the_study(uri), what="the study to start")
        tracker = MlflowTracker(uri)
        wait_for(lambda: any(len(tracker.metric_history(r.run_id, "val/acc"))
                             for r in tracker.find_runs({"kd.study_id": study_id}, status="RUNNING")),
                 what="a role to train")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert f"kdx run --resume {study_id}" in stderr and "Traceback" not in stderr
    runs = runs_by_role(tracker, study_id)
    assert runs[STUDY_ROLE].status == "KILLED"
    assert "SIGTERM" in runs[STUDY_ROLE].tags[FAILURE_TAG]
    assert [r for r in runs.values() if r.status == "RUNNING"] == []
    assert any(r.status == "KILLED" and "SIGTERM" in r.tags.get(FAILURE_TAG, "")
               for role, r in runs.items() if role != STUDY_ROLE)


def test_kill_9_is_listed_failed_and_resume_leaves_no_gap_or_duplicate(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = write_config(tmp_path, [*SLOW, "train.epochs=120", "train.checkpoint_every_s=1"])
    proc = kdx("run", str(config), "--tracking-uri", uri, "--no-progress", cwd=tmp_path)
    try:
        study_id = wait_for(lambda: the_study(uri), what="the study to start")
        def saved() -> set[tuple[str, int]]:
            found = set()
            for path in checkpoints(study_id).glob("*.pt"):
                with contextlib.suppress(FileNotFoundError):  # replaced or removed in between
                    found.add((path.name, path.stat().st_mtime_ns))
            return found

        first = wait_for(saved, what="a checkpoint")
        wait_for(lambda: saved() - first, what="the next checkpoint")
        proc.kill()  # right after a checkpoint: its epochs' metrics must already be in the store
        proc.wait(timeout=30)
    finally:
        proc.kill()
    row = list_studies(uri).iloc[0]
    assert row["status"] == "FAILED" and row["failure_reason"] == GONE_REASON

    resumed = subprocess.run([KDX, "run", "--resume", study_id, "--tracking-uri", uri, "--no-progress"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert list_studies(uri).iloc[0]["status"] == "FINISHED"
    assert_one_point_per_epoch(uri, study_id)
    assert not checkpoints(study_id).exists()  # a finished study keeps no checkpoint


def test_two_resumes_at_once_one_runs_and_one_is_refused(tmp_path: Path, monkeypatch) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri)
    study_id = failed_study(tracker, monkeypatch, *SLOW[len(TINY):], "train.teacher_epochs=1")  # student ahead
    procs = [kdx("run", "--resume", study_id, "--tracking-uri", uri, "--no-progress", cwd=tmp_path)
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refusal = next(err for code, err in results if code == 2).strip()
    assert len(refusal.splitlines()) == 1 and "running in process" in refusal, refusal
    assert tracker.get_run(study_id).status == "FINISHED"


# --- the same rules, in process -----------------------------------------------------------------------
def test_a_study_locked_by_another_process_is_refused_before_anything_changes(monkeypatch) -> None:
    tracker = MemoryTracker()
    study_id = failed_study(tracker, monkeypatch)
    before = {r.run_id: (r.status, dict(r.tags)) for r in tracker.runs.values()}
    lock = StudyLock(checkpoints(study_id))
    lock.acquire(study_id)
    try:
        with pytest.raises(StudyBusy, match=f"process {os.getpid()}"):
            Study.resume(study_id, tracker, progress=False).run()
    finally:
        lock.release()
    assert {r.run_id: (r.status, dict(r.tags)) for r in tracker.runs.values()} == before


def test_resume_refuses_a_study_whose_owner_still_runs() -> None:
    tracker = MemoryTracker()
    study_id = Study(tiny_config(), tracker, progress=False).start()
    tracker.set_tags(study_id, owner_tags())  # this very process: alive
    with pytest.raises(StudyBusy, match="still running"):
        Study.resume(study_id, tracker)


def test_a_dead_owner_makes_a_running_study_orphaned() -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tags = owner_tags() | {"kd.pid": gone.stdout.strip()}
    assert orphaned("RUNNING", tags) and orphaned("SCHEDULED", tags)
    assert not orphaned("FINISHED", tags) and not orphaned("RUNNING", owner_tags())
    recycled = owner_tags() | {"kd.pid_start": "another-process"}  # our pid, but not the process that wrote it
    assert orphaned("RUNNING", recycled)
    elsewhere = {"kd.host": "another-host", "kd.pid": "1", "kd.heartbeat": str(int(time.time()))}
    assert not orphaned("RUNNING", elsewhere)
    elsewhere["kd.heartbeat"] = str(int(time.time() - ownership.STALE_SECONDS - 1))
    assert orphaned("RUNNING", elsewhere)
    assert not orphaned("RUNNING", {})  # a run that names no owner is not judged


def test_epoch_metrics_reach_the_store_before_the_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """A hard kill right after a checkpoint loses only what was never flushed; nothing before it."""
    from kdcore import engine

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, flush_seconds=3600)  # nothing is flushed unless the study asks for it
    save, saves = engine._save_atomic, {"n": 0}

    def save_then_die(path, state):
        save(path, state)
        saves["n"] += 1
        if "student" in path.name and state["epoch"] == 2:
            tracker._buffer.clear()  # a kill -9 loses what is still buffered in the process
            raise SystemExit("killed")

    monkeypatch.setattr(engine, "_save_atomic", save_then_die)
    with pytest.raises(StudyFailed) as info:
        Study(tiny_config("train.epochs=4", "train.checkpoint_every_s=0"), tracker, progress=False).run()
    monkeypatch.undo()
    study_id = info.value.study_id
    student = runs_by_role(tracker, study_id)["student"]
    assert [s for s, _ in tracker.metric_history(student.run_id, "val/acc")] == [0, 1]
    Study.resume(study_id, MlflowTracker(uri), progress=False).run()
    assert_one_point_per_epoch(uri, study_id)


def test_a_checkpoint_of_another_config_is_refused(monkeypatch) -> None:
    import torch

    tracker = MemoryTracker()
    study_id = failed_study(tracker, monkeypatch, "train.epochs=3")
    checkpoints(study_id).mkdir(parents=True, exist_ok=True)
    torch.save({"owner": "0123456789abcdef:student", "epoch": 1}, checkpoints(study_id) / "student.pt")
    with pytest.raises(StudyFailed) as again:
        Study.resume(study_id, tracker, progress=False).run()
    assert isinstance(again.value.__cause__, CheckpointMismatch)
    assert "another config or role" in again.value.reason


def test_finished_studies_keep_no_checkpoints_and_old_ones_are_pruned(tmp_path: Path) -> None:
    tracker = MemoryTracker()
    summary = Study(tiny_config("train.epochs=2"), tracker, progress=False).run()
    assert not checkpoints(summary.study_id).exists()
    root = tmp_path / "checkpoints"
    for name, age_days in (("old", 30), ("recent", 1)):
        folder = root / name
        folder.mkdir(parents=True)
        saved = folder / "student.pt"
        saved.write_bytes(b"x")
        stamp = time.time() - age_days * 86_400
        os.utime(saved, (stamp, stamp))
    (root / "empty").mkdir()
    held = StudyLock(root / "running")
    held.acquire("running")
    try:
        removed = {p.name for p in prune_checkpoints(root)}
    finally:
        held.release()
    assert removed == {"old", "empty"}
    assert (root / "recent" / "student.pt").exists() and (root / "running").exists()


def test_sgd_without_momentum_trains() -> None:
    import torch

    cfg = tiny_config("train.optimizer=sgd", "train.momentum=0", "train.lr=0.5", "train.epochs=5")
    optimizer = build_optimizer(iter([torch.nn.Parameter(torch.zeros(2))]), cfg.train)
    assert optimizer.param_groups[0]["nesterov"] is False
    summary = Study(cfg, MemoryTracker(), progress=False).run()
    assert summary.roles["student"]["test/acc"] > 0.2


def test_a_baseline_never_runs_the_teacher(monkeypatch) -> None:
    """Method none learns from labels only: no teacher pass, no cache of the teacher's outputs."""
    calls: list[set[str]] = []
    original = Study.teacher_cache

    def counted(self, source, keys):
        calls.append(set(keys))
        return original(self, source, keys)

    monkeypatch.setattr(Study, "teacher_cache", counted)
    Study(tiny_config(), MemoryTracker(), progress=False).run()
    assert len(calls) == 1  # the student's teacher outputs, once

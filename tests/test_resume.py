"""Failures are recorded with their reason, and --resume finishes the study where it stopped."""

from __future__ import annotations

import pytest

from kdcore.engine import NonFiniteLossError
from kdcore.methods.kd import KD
from kdcore.study import FAILURE_TAG, Study, StudyFailed
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

EPOCHS = 4


def crash_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """Make the distilled student's step raise after ``steps`` successful calls."""
    original, calls = KD.step, {"n": 0}

    def step(self, batch):
        calls["n"] += 1
        if calls["n"] > steps:
            raise RuntimeError("simulated power cut")
        return original(self, batch)

    monkeypatch.setattr(KD, "step", step)


def test_crash_marks_runs_failed_and_resume_completes_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(f"train.epochs={EPOCHS}")
    reference = Study(cfg, MemoryTracker(), progress=False).run()

    tracker = MemoryTracker()
    steps_per_epoch = -(-int(0.7 * 1797) // cfg.train.batch_size)
    crash_after(monkeypatch, 2 * steps_per_epoch + 3)  # in the student's third epoch
    with pytest.raises(StudyFailed, match="simulated power cut") as info:
        Study(cfg, tracker, progress=False).run()
    study_id = info.value.study_id
    runs = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": study_id})}
    assert runs["study"].status == "FAILED" and "simulated power cut" in runs["study"].tags[FAILURE_TAG]
    assert runs["student"].status == "FAILED" and runs["student"].tags[FAILURE_TAG].startswith("RuntimeError")
    assert runs["teacher"].status == runs["baseline"].status == "FINISHED"
    assert [s for s, _ in tracker.metric_history(runs["student"].run_id, "val/acc")] == [0, 1]

    monkeypatch.undo()
    resumed = Study.resume(study_id, tracker, progress=False).run()
    assert resumed.study_id == study_id
    runs = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": study_id})}
    assert len(runs) == 4 and all(r.status == "FINISHED" for r in runs.values())
    assert all(FAILURE_TAG not in r.tags for r in runs.values())
    assert [s for s, _ in tracker.metric_history(runs["student"].run_id, "val/acc")] == list(range(EPOCHS))
    assert [s for s, _ in tracker.metric_history(runs["teacher"].run_id, "val/acc")] == list(range(EPOCHS))
    # Same seed and threads: the resumed study ends bit-identical to the uninterrupted one.
    for role in ("teacher", "baseline", "student"):
        assert resumed.roles[role]["test/acc"] == reference.roles[role]["test/acc"]
        assert resumed.roles[role]["test/ece"] == reference.roles[role]["test/ece"]


def test_finished_study_cannot_be_resumed() -> None:
    tracker = MemoryTracker()
    summary = Study(tiny_config(), tracker, progress=False).run()
    with pytest.raises(ValueError, match="already finished"):
        Study.resume(summary.study_id, tracker)


def test_non_finite_loss_stops_with_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kdcore.losses.response.kd_kl", lambda s, t, temperature: (s * float("nan")).sum())
    tracker = MemoryTracker()
    with pytest.raises(StudyFailed) as info:
        Study(tiny_config(), tracker, progress=False).run()
    assert isinstance(info.value.__cause__, NonFiniteLossError)
    assert "student: loss kd became nan in epoch 1" in info.value.reason
    assert "train.lr" in info.value.reason
    failed = tracker.find_runs({"kd.study_id": info.value.study_id}, status="FAILED")
    assert failed and all(FAILURE_TAG in r.tags for r in failed)


def test_same_config_seed_and_threads_give_bit_identical_results() -> None:
    a = Study(tiny_config("train.epochs=2"), MemoryTracker(), progress=False).run()
    b = Study(tiny_config("train.epochs=2"), MemoryTracker(), progress=False).run()
    for role in a.roles:
        for key in ("val/best_acc", "test/acc", "test/entropy", "test/ece"):
            assert a.roles[role][key] == b.roles[role][key]


def test_a_scheduled_study_exists_before_it_trains() -> None:
    tracker = MemoryTracker()
    study = Study(tiny_config(), tracker, progress=False)
    study_id = study.start(scheduled=True)
    assert tracker.get_run(study_id).status == "SCHEDULED"
    assert tracker.find_runs({"kd.study_id": study_id}) == [tracker.get_run(study_id)]
    assert study.run().study_id == study_id
    assert tracker.get_run(study_id).status == "FINISHED"


def test_every_study_logs_its_findings_and_gates() -> None:
    import json

    tracker = MemoryTracker()
    summary = Study(tiny_config("train.epochs=2"), tracker, progress=False).run()
    gates = json.loads(tracker.read_bytes(summary.study_id, "gates.json"))
    assert [g["number"] for g in gates] == list(range(1, 11)) == [g.number for g in summary.gates]
    findings = json.loads(tracker.read_bytes(summary.study_id, "findings.json"))
    assert tracker.get_run(summary.study_id).tags["kd.findings"] == ",".join(f["code"] for f in findings)
    metrics = tracker.get_run(summary.study_id).metrics
    assert metrics["study/gates_passed"] + metrics["study/gates_failed"] + metrics["study/gates_not_measurable"] == 10


@pytest.mark.parametrize(("mechanism", "roles"), [
    (["distill.mechanism=online", "distill.peers=[{name: mlp, width: 16, depth: 1}]"], ("student", "peer_1")),
    (["distill.mechanism=self", "distill.self_kind=spatial", "student.depth=2", "distill.exit=1"], ("student",)),
])
def test_a_crashed_group_of_models_resumes_identically(monkeypatch: pytest.MonkeyPatch, mechanism: list[str],
                                                        roles: tuple[str, ...]) -> None:
    """Peers (or a multi-exit student) trained in one loop continue together from their checkpoint."""
    from kdcore.mechanisms.online import MutualLearning
    from kdcore.mechanisms.self_distill import ExitDistillation

    cfg = tiny_config(f"train.epochs={EPOCHS}", *mechanism)
    reference = Study(cfg, MemoryTracker(), progress=False).run()
    method = MutualLearning if "online" in mechanism[0] else ExitDistillation
    original, calls = method.step, {"n": 0}

    def step(self, batch):
        calls["n"] += 1
        if calls["n"] > 2 * -(-int(0.7 * 1797) // cfg.train.batch_size) + 3:
            raise RuntimeError("simulated power cut")
        return original(self, batch)

    monkeypatch.setattr(method, "step", step)
    tracker = MemoryTracker()
    with pytest.raises(StudyFailed) as info:
        Study(cfg, tracker, progress=False).run()
    runs = {r.tags["kd.role"]: r for r in tracker.find_runs({"kd.study_id": info.value.study_id})}
    assert all(runs[role].status == "FAILED" for role in roles)
    monkeypatch.undo()
    resumed = Study.resume(info.value.study_id, tracker, progress=False).run()
    for role in roles:
        assert resumed.roles[role]["test/acc"] == reference.roles[role]["test/acc"]
        assert resumed.roles[role]["val/best_acc"] == reference.roles[role]["val/best_acc"]

"""A teacher is reused only when everything that shapes its weights is the same."""

from __future__ import annotations

import pytest

from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config


@pytest.mark.parametrize("change", [
    "data.split_seed=1", "data.val_fraction=0.2", "data.test_fraction=0.2", "train.threads=2", "train.device=mps",
    "train.device=auto", "train.seed=1", "train.lr=0.01", "train.batch_size=32", "train.epochs=2",
    "train.teacher_epochs=2", "train.optimizer=sgd", "train.schedule=constant", "teacher.width=16", "teacher.depth=2",
])
def test_each_change_that_shapes_the_teachers_weights_changes_its_fingerprint(change: str) -> None:
    assert tiny_config(change).teacher_fingerprint("v") != tiny_config().teacher_fingerprint("v")


def test_the_dataset_size_is_part_of_the_fingerprint() -> None:
    sizes = {n: tiny_config("data.name=mnist1d", f"data.n_samples={n}").teacher_fingerprint("v")
             for n in ("null", 500, 600)}
    assert len(set(sizes.values())) == 3


def test_amp_counts_only_where_the_engine_may_use_it() -> None:
    for device in ("auto", "cuda", "cuda:1"):  # AMP is on there whenever torch finds a GPU
        on, off = (tiny_config(f"train.device={device}", f"train.amp={amp}").teacher_fingerprint("v")
                   for amp in ("true", "false"))
        assert on != off, device
    for device in ("cpu", "mps"):  # never mixed precision: the same teacher either way
        on, off = (tiny_config(f"train.device={device}", f"train.amp={amp}").teacher_fingerprint("v")
                   for amp in ("true", "false"))
        assert on == off, device
    assert tiny_config().teacher_fingerprint("v") != tiny_config().teacher_fingerprint("w")  # the code version


def test_a_study_reuses_an_identical_teacher_but_not_one_trained_on_another_split() -> None:
    tracker = MemoryTracker()

    def teacher_run(*overrides: str) -> tuple[str, str | None]:
        summary = Study(tiny_config(*overrides), tracker, progress=False).run()
        run = next(r for r in tracker.find_runs({"kd.study_id": summary.study_id}) if r.tags["kd.role"] == "teacher")
        assert summary.teacher_reused_from == run.tags.get("kd.reused_from")
        return run.run_id, run.tags.get("kd.reused_from")

    first, reused = teacher_run()
    assert reused is None
    _, reused = teacher_run("data.split_seed=1")
    assert reused is None  # trained anew: the first teacher learned from samples this split tests on
    _, reused = teacher_run()
    assert reused == first


def test_an_extra_teachers_fingerprint_holds_its_own_architecture_and_seed_offset() -> None:
    cfg = tiny_config("distill.teachers=[{name: mlp, width: 32, depth: 1}, {name: mlp, width: 32, depth: 1}]")
    main, second, third = (cfg.teacher_fingerprint("v", k) for k in (1, 2, 3))
    assert len({main, second, third}) == 3  # one architecture, three seeds: three teachers
    assert main == tiny_config().teacher_fingerprint("v")  # adding teachers keeps the teacher's own reuse
    other = tiny_config("distill.teachers=[{name: mlp, width: 16, depth: 1}, {name: mlp, width: 32, depth: 1}]")
    assert other.teacher_fingerprint("v", 2) != second and other.teacher_fingerprint("v", 3) == third


def test_a_study_reuses_identical_extra_teachers_role_by_role() -> None:
    tracker = MemoryTracker()
    teachers = "distill.teachers=[{name: mlp, width: 16, depth: 1}]"

    def teacher_runs(*overrides: str) -> dict[str, tuple[str, str | None]]:
        summary = Study(tiny_config(teachers, *overrides), tracker, progress=False).run()
        runs = tracker.find_runs({"kd.study_id": summary.study_id})
        return {r.tags["kd.role"]: (r.run_id, r.tags.get("kd.reused_from"))
                for r in runs if r.tags["kd.role"].startswith("teacher")}

    first = teacher_runs()
    assert set(first) == {"teacher", "teacher_2"} and all(origin is None for _, origin in first.values())
    again = teacher_runs("distill.temperature=2")  # the student's settings never change a teacher
    assert {role: origin for role, (_, origin) in again.items()} == {role: run for role, (run, _) in first.items()}


@pytest.mark.parametrize("change", ["train.seed=1", "train.epochs=2", "train.lr=0.01", "student.width=16",
                                    "data.split_seed=1", "train.threads=2"])
def test_each_change_that_shapes_the_baselines_weights_changes_its_fingerprint(change: str) -> None:
    assert tiny_config(change).baseline_fingerprint("v") != tiny_config().baseline_fingerprint("v")


@pytest.mark.parametrize("change", ["distill.temperature=8", "distill.alpha=0.3", "distill.method=dist",
                                    "distill.label_smoothing=0.1", "teacher.width=16", "train.teacher_epochs=3"])
def test_how_a_study_distils_leaves_the_baseline_fingerprint_alone(change: str) -> None:
    assert tiny_config(change).baseline_fingerprint("v") == tiny_config().baseline_fingerprint("v")


def test_studies_that_differ_in_how_they_distil_share_one_baseline_with_its_curves() -> None:
    tracker = MemoryTracker()

    def baseline(*overrides: str) -> tuple[dict[str, float], str | None, list]:
        summary = Study(tiny_config(*overrides), tracker, progress=False).run()
        run = next(r for r in tracker.find_runs({"kd.study_id": summary.study_id}) if r.tags["kd.role"] == "baseline")
        return run.metrics, run.tags.get("kd.reused_from"), tracker.metric_history(run.run_id, "val/acc")

    first, reused, curve = baseline()
    assert reused is None
    again, reused, copied = baseline("distill.temperature=8")
    assert reused is not None and again["test/acc"] == first["test/acc"]  # the same weights, evaluated again
    assert copied == curve  # the reused baseline draws the training it came from
    _, reused, _ = baseline("train.seed=1")
    assert reused is None  # another seed: its own baseline

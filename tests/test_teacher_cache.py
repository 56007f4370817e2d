"""Where a student's teacher outputs come from: a cache on the training device, a cache in CPU memory, or the
teacher run live; capped by train.cache_gib, said by the role's kd.teacher_cache tag and the study's summary."""

from __future__ import annotations

import pytest
import torch

from kdcore.engine import GIB, cache_home, predict_outputs
from kdcore.methods.base import Batch, TeacherSource, build_method, cached_rows
from kdcore.models.base import build_model
from kdcore.study import CACHE_TAG, Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

CPU = torch.device("cpu")


def run(*overrides: str) -> tuple[Study, MemoryTracker, str]:
    """A tiny two-epoch study; returns it, its tracker and its id."""
    tracker = MemoryTracker()
    study = Study(tiny_config("train.epochs=2", *overrides), tracker, progress=False)
    summary = study.run()
    return study, tracker, summary.study_id


def tags(tracker: MemoryTracker, study_id: str) -> dict[str, str | None]:
    """Each role's kd.teacher_cache tag (None: no teacher, so no tag)."""
    return {run.tags["kd.role"]: run.tags.get(CACHE_TAG) for run in tracker.find_runs({"kd.study_id": study_id})}


def test_a_small_cache_lives_on_the_training_device_and_the_student_run_says_so() -> None:
    _, tracker, study_id = run()
    found = tags(tracker, study_id)
    assert found["student"] is not None and found["student"].startswith("device (cpu, ")
    assert found["student"].endswith(" MiB)")  # digits' logits: a few dozen KiB
    assert found["teacher"] is found["baseline"] is found["study"] is None  # nobody teaches them


def test_no_cache_runs_the_teacher_live_says_why_and_trains_the_same_student() -> None:
    """cache_gib 0 never caches; on the CPU the live teacher gives the student exactly the cached outputs."""
    cached, _, _ = run()
    live, tracker, study_id = run("train.cache_gib=0")
    assert tags(tracker, study_id)["student"] == "live: train.cache_gib is 0"
    ours, theirs = live.roles["student"].model.state_dict(), cached.roles["student"].model.state_dict()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


def test_outputs_over_the_cap_run_the_teacher_live() -> None:
    _, tracker, study_id = run("train.cache_gib=0.00001")  # 10.5 KiB, below digits' 49 KiB of logits
    assert tags(tracker, study_id)["student"] == "live: outputs 0.05 MiB exceed train.cache_gib 1e-05"


def test_the_summary_names_the_students_teacher_outputs() -> None:
    """What the CLI prints: the note of the student's run."""
    summary = Study(tiny_config("train.cache_gib=0"), MemoryTracker(), progress=False).run()
    assert summary.teacher_cache == "live: train.cache_gib is 0"
    summary = Study(tiny_config(), MemoryTracker(), progress=False).run()
    assert summary.teacher_cache.startswith("device (cpu, ")


def test_a_cache_goes_to_cpu_memory_when_the_gpu_has_too_little_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """cache_home reads the GPU's free memory and leaves it most of it (no GPU needed: its answer is faked)."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * GIB, 80 * GIB))
    cuda = torch.device("cuda")
    assert cache_home(cuda, GIB) == (cuda, "device (cuda, 1.00 GiB)")
    home, note = cache_home(cuda, 3 * GIB)
    assert home == CPU and note.startswith("cpu (3.00 GiB; cuda has 8.00 GiB free")
    assert cache_home(CPU, 3 * GIB) == (CPU, "device (cpu, 3.00 GiB)")


def test_rows_of_a_cache_elsewhere_are_read_at_the_cpu_positions() -> None:
    """A cache where the batch is is indexed there; a cache in CPU memory for a batch on another device is read
    with the batch's CPU positions (never by reading the device's back) and its rows go to that device. The
    meta device stands in for a GPU: nothing can be read back from it."""
    table = torch.arange(20.0).view(10, 2)
    index = torch.tensor([4, 1, 7])
    assert torch.equal(cached_rows(table, Batch(torch.zeros(3, 1), torch.zeros(3), index, index.clone())), table[index])
    meta = index.to("meta")
    rows = cached_rows(table, Batch(torch.zeros(3, 1), torch.zeros(3), meta, index))
    assert rows.device.type == "meta" and rows.shape == (3, 2)
    with pytest.raises(NotImplementedError):  # without the CPU positions it would have to read the device's
        cached_rows(table, Batch(torch.zeros(3, 1), torch.zeros(3), meta))


def test_outputs_can_be_gathered_off_the_device_they_are_computed_on() -> None:
    """predict_outputs keeps the interface benchmarks build their caches with, and can gather elsewhere."""
    cfg = tiny_config()
    torch.manual_seed(0)
    teacher = build_model(cfg.teacher, (64,), 10)
    x = torch.randn(2500, 64)
    method = build_method("fitnet", build_model(cfg.student, (64,), 10), TeacherSource(teacher), cfg.distill,
                          example=x[:8])
    plain = predict_outputs(teacher, x, CPU, False, method.teacher_keys())
    moved = predict_outputs(teacher, x, CPU, False, method.teacher_keys(), to=CPU)
    assert plain.keys() == moved.keys() == method.teacher_keys()
    assert all(torch.equal(plain[key], moved[key]) for key in plain)


def test_augmented_batches_leave_the_teacher_live_with_that_reason() -> None:
    cfg = tiny_config()
    torch.manual_seed(0)
    source = TeacherSource(build_model(cfg.teacher, (64,), 10))
    method = build_method("kd", build_model(cfg.student, (64,), 10), source, cfg.distill)
    assert method.teacher_placement("live: training batches are augmented") == "live: training batches are augmented"
    source.placement = "device (cpu, 0.05 MiB)"
    assert method.teacher_placement("ignored") == "device (cpu, 0.05 MiB)"
    assert build_method("none", build_model(cfg.student, (64,), 10), None, cfg.distill).teacher_placement() == ""

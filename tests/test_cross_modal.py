"""Cross-modal distillation: views, the alignment loss, pairing, and the failure without alignment."""

from __future__ import annotations

import pytest
import torch

from kdcore.config import ConfigError
from kdcore.losses.alignment import alignment_loss
from kdcore.mechanisms.cross_modal import CrossModalDistillation, _derangement
from kdcore.methods.base import Batch, TeacherSource
from kdcore.models.base import ViewModel, build_model
from kdcore.study import Study
from kdcore.tracker import MemoryTracker
from tests.helpers import tiny_config

RGBD = ["data.name=rgbd_scenes", "data.n_samples=600", "distill.mechanism=cross_modal", "train.epochs=2",
        "distill.align_epochs=1"]


def test_alignment_loss_is_zero_when_aligned_and_trains_only_the_student_side() -> None:
    teacher = torch.randn(6, 10)
    assert alignment_loss(3 * teacher, teacher).item() == pytest.approx(0, abs=1e-6)  # direction, not scale
    assert alignment_loss(-teacher, teacher).item() == pytest.approx(2)
    mapped = torch.randn(6, 10, requires_grad=True)
    target = torch.randn(6, 10, requires_grad=True)
    loss = alignment_loss(mapped, target)
    loss.backward()
    assert 0 < loss.item() < 2 and mapped.grad is not None and target.grad is None
    with pytest.raises(ValueError, match="equal shapes"):
        alignment_loss(torch.randn(2, 3), torch.randn(2, 4))


def test_a_view_model_sees_only_its_channels() -> None:
    cfg = tiny_config(*RGBD)
    depth = build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4)))
    assert isinstance(depth, ViewModel) and depth.net.blocks[0][0].in_features == 32 * 32
    x = torch.rand(2, 4, 32, 32)
    other_rgb = x.clone()
    other_rgb[:, :3] = torch.rand(2, 3, 32, 32)
    assert torch.equal(depth(x).logits, depth(other_rgb).logits)
    other_depth = x.clone()
    other_depth[:, 3] = torch.rand(2, 32, 32)
    assert not torch.equal(depth(x).logits, depth(other_depth).logits)


@pytest.mark.parametrize(("override", "message"), [
    ("distill.student_view=rgb", "distill.student_view: the student must see another view"),
    ("distill.teacher_view=infrared", "distill.teacher_view: rgbd_scenes has no view 'infrared'; allowed: rgb, depth"),
    ("distill.align_epochs=2", "distill.align_epochs: alignment takes the first epochs"),
    ("distill.method=fitnet", "distill.method: the cross_modal mechanism transfers logits"),
])
def test_bad_cross_modal_configs_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(*RGBD, override)


def test_other_mechanisms_and_datasets_refuse_cross_modal() -> None:
    with pytest.raises(ConfigError, match=r"^distill\.align: only the cross_modal mechanism uses it"):
        tiny_config("distill.align=false")
    with pytest.raises(ConfigError, match=r"^data\.name: the cross_modal mechanism needs paired views .* digits"):
        tiny_config("distill.mechanism=cross_modal")


def test_the_teachers_view_is_part_of_its_fingerprint() -> None:
    rgb = tiny_config(*RGBD, "distill.teacher_view=rgb", "distill.student_view=depth")
    depth = tiny_config(*RGBD, "distill.teacher_view=depth", "distill.student_view=rgb")
    assert rgb.teacher_fingerprint("1") != depth.teacher_fingerprint("1")
    assert rgb.teacher_fingerprint("1") == tiny_config(*RGBD).teacher_fingerprint("1")  # rgb is the default


def test_unpaired_partners_move_every_sample() -> None:
    order = _derangement(500, 3)
    assert sorted(order.tolist()) == list(range(500)) and not (order == torch.arange(500)).any()


def test_alignment_phase_then_distillation_phase_on_paired_samples() -> None:
    cfg = tiny_config(*RGBD, "distill.alpha=0.5")
    x = torch.rand(16, 4, 32, 32)
    student = build_model(cfg.student, (4, 32, 32), 3, ("depth", (3, 4)))
    teacher = build_model(cfg.teacher, (4, 32, 32), 3, ("rgb", (0, 3)))
    method = CrossModalDistillation(student, TeacherSource(teacher), cfg.distill, [], x[:4], x)
    batch = Batch(x[:8], torch.zeros(8, dtype=torch.long), torch.arange(8))
    method.begin_epoch(0)
    assert set(method.step(batch).losses) == {"align"}
    method.begin_epoch(1)
    assert set(method.step(batch).losses) == {"align", "ce"}
    assert torch.equal(method.partners, torch.arange(16))  # paired: each sample with its own teacher outputs


def test_without_alignment_a_label_free_student_fails_and_the_detector_fires() -> None:
    tracker = MemoryTracker()
    cfg = tiny_config(*RGBD, "data.name=rgbd_scenes_nearest", "data.n_samples=1000", "distill.align=false",
                      "distill.alpha=1", "train.epochs=4", "teacher.width=64")  # a teacher well above chance
    summary = Study(cfg, tracker, progress=False).run()
    student = tracker.find_runs({"kd.study_id": summary.study_id, "kd.role": "student"})[0]
    assert student.tags["kd.view"] == "depth" and student.tags["kd.teacher_view"] == "rgb"
    assert "train/loss_align" not in student.metrics
    assert "cross_modal_failure" in {f.code for f in summary.findings}
    assert "unaligned" in summary.name
